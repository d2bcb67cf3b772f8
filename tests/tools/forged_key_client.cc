// forged_key_client: a TLS client that presents a certificate but signs its CertificateVerify with
// the private scalar of ANOTHER EC key, to prove that a server refuses a client that does not own
// the key of the certificate it shows. An ordinary client cannot do this: SSL_CTX_use_PrivateKey
// refuses a key whose public part differs from the certificate's. Here the key handed to OpenSSL
// is a hybrid, the certificate's public point with the other key's private scalar, so the
// library's consistency check (a public key comparison) passes and the signature is wrong.
//
//   forged_key_client HOST PORT CA_FILE CERT_CHAIN SIGNING_KEY [1.2|1.3]
//
// After the handshake it sends an MQTT 3.1.1 CONNECT (client id "forged-key") and waits for the
// answer. One line on stdout says what happened; the exit status says it too:
//   0 "connack <code>"          the server answered the CONNECT
//   1 "handshake_failed <why>"  the TLS handshake failed
//   2 "closed <why>"            handshake done, then closed (or silent) without a CONNACK
//   3 "error <why>"             bad arguments or a local setup failure (nothing was tested)
// With SIGNING_KEY the certificate's own key, the same tool is an ordinary client (status 0).
#include <netdb.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using CtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using BldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using ParamsPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;

// Prints the outcome line and returns its status, so callers can `return Report(...)`.
int Report(int status, const char* word, const std::string& why) {
  std::printf("%s %s\n", word, why.c_str());
  std::fflush(stdout);
  return status;
}

std::string OpensslError() {
  unsigned long code = ERR_get_error();
  if (code == 0)
    return "no OpenSSL error queued";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// The EC key in a PEM file, or null.
PkeyPtr ReadKey(const char* path) {
  FILE* f = std::fopen(path, "r");
  if (f == nullptr)
    return nullptr;
  PkeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return key;
}

// The first certificate of a PEM file, or null.
X509Ptr ReadCert(const char* path) {
  FILE* f = std::fopen(path, "r");
  if (f == nullptr)
    return nullptr;
  X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return cert;
}

// An EC key with cert_key's curve and public point and signer's private scalar; null when either
// is not an EC key or OpenSSL refuses the parameters.
PkeyPtr HybridKey(EVP_PKEY* cert_key, EVP_PKEY* signer) {
  char group[64];
  unsigned char pub[256];
  size_t pub_len = 0;
  BIGNUM* priv_raw = nullptr;
  if (EVP_PKEY_get_utf8_string_param(cert_key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                     nullptr) != 1 ||
      EVP_PKEY_get_octet_string_param(cert_key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub,
                                      &pub_len) != 1 ||
      EVP_PKEY_get_bn_param(signer, OSSL_PKEY_PARAM_PRIV_KEY, &priv_raw) != 1) {
    return nullptr;
  }
  BnPtr priv(priv_raw);
  BldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv.get()) != 1) {
    return nullptr;
  }
  ParamsPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* out = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    return nullptr;
  }
  return PkeyPtr(out);
}

// A connected TCP socket (5 s receive timeout), or -1.
int Dial(const char* host, const char* port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host, port, &hints, &found) != 0)
    return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd >= 0) {
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  return fd;
}

// A client context presenting chain_path with the hybrid key, verifying the server against ca.
CtxPtr MakeContext(const char* ca, const char* chain_path, EVP_PKEY* key, const std::string& ver,
                   std::string* why) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  int version = ver == "1.2" ? TLS1_2_VERSION : ver == "1.3" ? TLS1_3_VERSION : 0;
  if (!ctx || SSL_CTX_load_verify_locations(ctx.get(), ca, nullptr) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx.get(), chain_path) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key) != 1 ||
      (version != 0 && (SSL_CTX_set_min_proto_version(ctx.get(), version) != 1 ||
                        SSL_CTX_set_max_proto_version(ctx.get(), version) != 1))) {
    *why = OpensslError();
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

// Sends a CONNECT on an established session and reports the server's answer.
int ExchangeConnect(SSL* ssl) {
  static const unsigned char kConnect[] = {0x10, 0x16, 0x00, 0x04, 'M',  'Q',  'T', 'T',
                                           0x04, 0x02, 0x00, 0x3c, 0x00, 0x0a, 'f', 'o',
                                           'r',  'g',  'e',  'd',  '-',  'k',  'e', 'y'};
  if (SSL_write(ssl, kConnect, sizeof kConnect) <= 0) {
    return Report(2, "closed", "write failed: " + OpensslError());
  }
  unsigned char reply[4];
  int got = 0;
  while (got < 4) {
    int n = SSL_read(ssl, reply + got, 4 - got);
    if (n <= 0)
      return Report(2, "closed", "no CONNACK: " + OpensslError());
    got += n;
  }
  if (reply[0] != 0x20)
    return Report(2, "closed", "first reply is not a CONNACK");
  return Report(0, "connack", std::to_string(reply[3]));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6 || argc > 7) {
    return Report(3, "error",
                  "usage: forged_key_client HOST PORT CA_FILE CERT_CHAIN SIGNING_KEY [1.2|1.3]");
  }
  const std::string version = argc == 7 ? argv[6] : "";
  X509Ptr cert = ReadCert(argv[4]);
  PkeyPtr signer = ReadKey(argv[5]);
  if (!cert || !signer)
    return Report(3, "error", "cannot read the certificate or the key");
  PkeyPtr hybrid = HybridKey(X509_get0_pubkey(cert.get()), signer.get());
  if (!hybrid)
    return Report(3, "error", "cannot build the hybrid EC key: " + OpensslError());
  std::string why;
  CtxPtr ctx = MakeContext(argv[3], argv[4], hybrid.get(), version, &why);
  if (!ctx)
    return Report(3, "error", "client context: " + why);
  int fd = Dial(argv[1], argv[2]);
  if (fd < 0)
    return Report(3, "error", "cannot connect");
  SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  SSL_set_tlsext_host_name(ssl.get(), "localhost");
  int status = SSL_connect(ssl.get()) == 1 ? -1 : Report(1, "handshake_failed", OpensslError());
  if (status < 0)
    status = ExchangeConnect(ssl.get());
  ssl.reset();
  close(fd);
  return status;
}

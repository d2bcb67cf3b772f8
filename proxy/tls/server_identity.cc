#include "tls/build_steps.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/hardware_key.h"
#include "util/pem.h"

namespace mqtls::tls::detail {
namespace {

// "'subject' in 'file'", for messages about one certificate of a file.
std::string certificateIn(X509* cert, const std::string& file) {
  return "'" + pem::subjectLine(cert) + "' in '" + file + "'";
}

// The report keys of one certificate: "cert"/"key" for the first, "certificates[i].cert"/
// "certificates[i].key" for the others.
struct CertificateKeys {
  std::string cert;
  std::string key;
};

// The chain order: certificate i+1 issued certificate i.
void checkChainOrder(const std::vector<X509Ptr>& chain, const std::string& file,
                     const CertificateKeys& keys, BuildReport& report) {
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
    if (X509_check_issued(chain[i + 1].get(), chain[i].get()) != X509_V_OK) {
      addError(report, keys.cert,
               "certificate " + std::to_string(i + 2) + " of '" + file +
                   "' did not issue certificate " + std::to_string(i + 1) +
                   "; order the chain leaf first, each certificate followed by its issuer");
    }
  }
}

// Installs leaf and chain; OpenSSL refuses a certificate its security level rejects.
void installChain(SSL_CTX* ctx, const std::vector<X509Ptr>& chain, const std::string& file,
                  const CertificateKeys& keys, BuildReport& report) {
  if (SSL_CTX_use_certificate(ctx, chain.front().get()) != 1) {
    addError(report, keys.cert,
             "OpenSSL refuses certificate " + certificateIn(chain.front().get(), file) + " (" +
                 takeOpenSslError() +
                 "); issue it with a stronger key or signature (e.g. EC P-256 or RSA 2048+, "
                 "SHA-256)");
  }
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
      addError(report, keys.cert,
               "certificate " + std::to_string(i + 1) + " " + certificateIn(chain[i].get(), file) +
                   " cannot be added to the chain (" + takeOpenSslError() +
                   "); replace it with one OpenSSL accepts (e.g. EC P-256 or RSA 2048+, "
                   "SHA-256) or remove it");
    }
  }
}

// Installs one chain and its key (in the slot of the key's type); checks key/cert match, validity
// and chain order. Returns the key's type (EVP_PKEY_base_id), or 0 if it could not be read.
int installCertificate(SSL_CTX* ctx, const config::ServerCertificate& certificate,
                       const CertificateKeys& keys, OSSL_LIB_CTX* library, BuildReport& report) {
  const config::ServerCertificate& settings = certificate;
  auto chain = pem::readCertificates(settings.cert_file, library);
  const bool on_token = isPkcs11Uri(settings.key_file);  // the key stays on a PKCS#11 token
  auto key = on_token ? loadHardwareKey(settings.key_file)
                      : pem::readPrivateKey(settings.key_file, library);
  if (!chain) {
    addError(
        report, keys.cert,
        chain.error().message + "; point 'cert' at the server certificate chain (PEM, leaf first)");
  }
  if (!key) {
    addError(
        report, keys.key,
        key.error().message + (on_token ? "" : "; point 'key' at the server's private key (PEM)"));
  }
  if (!chain) {
    return 0;
  }
  X509* leaf = chain->front().get();
  if (auto valid = pem::checkValidity(leaf, std::time(nullptr)); !valid) {
    addError(report, keys.cert,
             valid.error().message + " ('" + settings.cert_file +
                 "'); renew it or point 'cert' at a currently valid certificate");
  }
  checkChainOrder(*chain, settings.cert_file, keys, report);
  installChain(ctx, *chain, settings.cert_file, keys, report);
  if (!key) {
    return 0;
  }
  if (auto match = pem::checkKeyMatchesCertificate(leaf, key->get()); !match) {
    addError(report, keys.key,
             match.error().message + " (first certificate of '" + settings.cert_file +
                 "'); use the key the certificate was issued for");
  } else if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
    addError(report, keys.key,
             "OpenSSL refuses the private key in '" + redactPkcs11Uri(settings.key_file) + "' (" +
                 takeOpenSslError() + "); use an EC P-256 or RSA 2048+ key");
  }
  return EVP_PKEY_base_id(key->get());
}

const char* keyTypeName(int type) {
  switch (type) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
      return "RSA";
    case EVP_PKEY_EC:
      return "ECDSA";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    default:
      return "this";
  }
}

}  // namespace

// Every server certificate: cert_file/key_file, then more_certificates, at most one per key type.
void installServerIdentity(SSL_CTX* ctx, const config::TlsSettings& settings, OSSL_LIB_CTX* library,
                           BuildReport& report) {
  std::vector<int> types;
  const std::size_t count = 1 + settings.more_certificates.size();
  for (std::size_t i = 0; i < count; ++i) {
    const CertificateKeys keys =
        i == 0 ? CertificateKeys{"cert", "key"}
               : CertificateKeys{"certificates[" + std::to_string(i) + "].cert",
                                 "certificates[" + std::to_string(i) + "].key"};
    const config::ServerCertificate certificate =
        i == 0 ? config::ServerCertificate{settings.cert_file, settings.key_file}
               : settings.more_certificates[i - 1];
    const int type = installCertificate(ctx, certificate, keys, library, report);
    const bool rsa = type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS;
    for (int earlier : types) {
      if (earlier == type || (rsa && (earlier == EVP_PKEY_RSA || earlier == EVP_PKEY_RSA_PSS))) {
        addError(report, keys.key,
                 std::string("a second certificate with an ") + keyTypeName(type) +
                     " key; a listener or site serves one certificate per key type (e.g. one "
                     "ECDSA and one RSA): remove one of them");
      }
    }
    if (type != 0) {
      types.push_back(type);
    }
  }
}

}  // namespace mqtls::tls::detail

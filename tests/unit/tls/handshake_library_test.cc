// The handshake library context (tls/handshake_library.h): it offers only the public-key decoders
// a client certificate needs, parses every kind of client key, verifies against keys read in the
// files' library context, serves mutual-TLS handshakes with EC and RSA server keys read there,
// and stays away when OpenSSL's configuration puts another provider in charge.
#include "tls/handshake_library.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tls/context_store.h"
#include "tls/library_contexts.h"
#include "util/openssl_ptr.h"

namespace mqtls::tls {
namespace {

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

// The certificates of a PEM file, read in the default library context.
std::vector<X509Ptr> readPem(const std::string& name) {
  std::vector<X509Ptr> all;
  FILE* file = std::fopen(certPath(name).c_str(), "r");
  if (file == nullptr) {
    return all;
  }
  while (X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr)) {
    all.emplace_back(cert);
  }
  std::fclose(file);
  return all;
}

EvpPkeyPtr readKey(const std::string& name) {
  FILE* file = std::fopen(certPath(name).c_str(), "r");
  if (file == nullptr) {
    return nullptr;
  }
  EvpPkeyPtr key(PEM_read_PrivateKey(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  return key;
}

// `cert` parsed again from its DER in `library`, as libssl parses what a client presents.
X509Ptr reparse(X509* cert, OSSL_LIB_CTX* library) {
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  X509* parsed = X509_new_ex(library, nullptr);
  const unsigned char* cursor = der;
  if (length <= 0 || d2i_X509(&parsed, &cursor, length) == nullptr) {
    X509_free(parsed);  // d2i_X509 freed it (and set it to null) if it failed
    parsed = nullptr;
  }
  OPENSSL_free(der);
  return X509Ptr(parsed);
}

TEST(HandshakeLibrary, OffersOnlyTheDecodersOfClientCertificatePublicKeys) {
  std::string why;
  auto library = makeHandshakeLibrary(nullptr, why);
  ASSERT_NE(library, nullptr) << why;
  EXPECT_EQ(decoderCount(library->get()), 6);  // EC, RSA, RSA-PSS, Ed25519, Ed448, DSA
  EXPECT_GT(decoderCount(nullptr), 30);
}

TEST(HandshakeLibrary, ParsesClientKeysAndVerifiesThemAgainstKeysOfTheFilesLibrary) {
  std::string why;
  auto library = makeHandshakeLibrary(nullptr, why);
  ASSERT_NE(library, nullptr) << why;
  auto chain = readPem("client.pem");  // leaf, intermediate
  ASSERT_EQ(chain.size(), 2u);
  X509Ptr leaf = reparse(chain[0].get(), library->get());
  ASSERT_NE(leaf, nullptr);
  ASSERT_NE(X509_get0_pubkey(leaf.get()), nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(leaf.get())), EVP_PKEY_EC);
  EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(chain[1].get())), 1);
  auto other = readPem("client-wrongca.pem");
  ASSERT_FALSE(other.empty());
  EXPECT_NE(X509_verify(leaf.get(), X509_get0_pubkey(other[0].get())), 1);

  auto rsa = readPem("server-rsa.pem");
  ASSERT_FALSE(rsa.empty());
  X509Ptr rsa_leaf = reparse(rsa[0].get(), library->get());
  ASSERT_NE(rsa_leaf, nullptr);
  ASSERT_NE(X509_get0_pubkey(rsa_leaf.get()), nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(rsa_leaf.get())), EVP_PKEY_RSA);

  // An Ed25519 certificate, self-signed in the default library context.
  EvpPkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(ed, nullptr);
  X509Ptr self(X509_new());
  X509_set_version(self.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(self.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(self.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(self.get()), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(self.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("ed-device"), -1, -1, 0);
  X509_set_issuer_name(self.get(), X509_get_subject_name(self.get()));
  X509_set_pubkey(self.get(), ed.get());
  ASSERT_GT(X509_sign(self.get(), ed.get(), nullptr), 0);
  X509Ptr ed_leaf = reparse(self.get(), library->get());
  ASSERT_NE(ed_leaf, nullptr);
  ASSERT_NE(X509_get0_pubkey(ed_leaf.get()), nullptr);
  EXPECT_EQ(X509_verify(ed_leaf.get(), X509_get0_pubkey(ed_leaf.get())), 1);
}

// Drives a client and a server SSL over a memory BIO pair until both are done or one fails.
bool handshakeOver(SSL* client, SSL* server) {
  BIO* client_side = nullptr;
  BIO* server_side = nullptr;
  BIO_new_bio_pair(&client_side, 0, &server_side, 0);
  SSL_set_bio(client, client_side, client_side);
  SSL_set_bio(server, server_side, server_side);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  for (int i = 0; i < 20; ++i) {
    const int c = SSL_do_handshake(client);
    const int s = SSL_do_handshake(server);
    if (c == 1 && s == 1) {
      return true;
    }
    if ((c != 1 && SSL_get_error(client, c) != SSL_ERROR_WANT_READ) ||
        (s != 1 && SSL_get_error(server, s) != SSL_ERROR_WANT_READ)) {
      return false;
    }
  }
  return false;
}

// A server SSL_CTX in the handshake library context with its certificate and key read in the
// files' (default) library context, as a listener's context is built; TLS 1.2 and 1.3.
TEST(HandshakeLibrary, ServesMutualTlsWithKeysReadInTheFilesLibrary) {
  std::string why;
  auto library = makeHandshakeLibrary(nullptr, why);
  ASSERT_NE(library, nullptr) << why;
  for (const char* server_name : {"server-ec", "server-rsa"}) {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      SCOPED_TRACE(std::string(server_name) + " " + std::to_string(version));
      SslCtxPtr server_ctx(SSL_CTX_new_ex(library->get(), nullptr, TLS_server_method()));
      auto server_chain = readPem(std::string(server_name) + ".pem");
      ASSERT_FALSE(server_chain.empty());
      ASSERT_EQ(SSL_CTX_use_certificate(server_ctx.get(), server_chain[0].get()), 1);
      ASSERT_EQ(SSL_CTX_use_PrivateKey(server_ctx.get(),
                                       readKey(std::string(server_name) + ".key").get()),
                1);
      X509_STORE* trust = SSL_CTX_get_cert_store(server_ctx.get());
      for (auto& ca : readPem("ca-bundle.pem")) {
        X509_STORE_add_cert(trust, ca.get());
      }
      SSL_CTX_set_verify(server_ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         nullptr);

      SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
      SSL_CTX_set_min_proto_version(client_ctx.get(), version);
      SSL_CTX_set_max_proto_version(client_ctx.get(), version);
      ASSERT_EQ(
          SSL_CTX_use_certificate_chain_file(client_ctx.get(), certPath("client.pem").c_str()), 1);
      ASSERT_EQ(SSL_CTX_use_PrivateKey_file(client_ctx.get(), certPath("client.key").c_str(),
                                            SSL_FILETYPE_PEM),
                1);
      SslPtr client(SSL_new(client_ctx.get()));
      SslPtr server(SSL_new(server_ctx.get()));
      ASSERT_TRUE(handshakeOver(client.get(), server.get()));
      EXPECT_EQ(SSL_get_verify_result(server.get()), X509_V_OK);
      X509* peer = SSL_get0_peer_certificate(server.get());
      ASSERT_NE(peer, nullptr);
      EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(peer)) > 0, true);
    }
  }
}

// OpenSSL's configuration may put a FIPS, legacy or PKCS#11 provider in charge: then every
// handshake stays with it, and the reason names the providers.
TEST(HandshakeLibrary, StaysAwayWhenAnotherProviderIsActive) {
  LibCtxPtr files(OSSL_LIB_CTX_new());
  OSSL_PROVIDER* fallback = OSSL_PROVIDER_load(files.get(), "default");
  OSSL_PROVIDER* base = OSSL_PROVIDER_load(files.get(), "base");
  ASSERT_NE(fallback, nullptr);
  ASSERT_NE(base, nullptr);
  std::string why;
  EXPECT_EQ(makeHandshakeLibrary(files.get(), why), nullptr);
  EXPECT_NE(why.find("base"), std::string::npos) << why;
  OSSL_PROVIDER_unload(base);
  // With the default provider alone it is made.
  EXPECT_NE(makeHandshakeLibrary(files.get(), why), nullptr) << why;
  OSSL_PROVIDER_unload(fallback);
}

// Two handshake library contexts over one files library context share its default provider;
// either may go first, and what they loaded is released (the sanitizer build checks for leaks).
TEST(HandshakeLibrary, TwoOverOneFilesLibraryOutliveEachOther) {
  auto chain = readPem("client.pem");
  ASSERT_FALSE(chain.empty());
  for (int round = 0; round < 3; ++round) {
    std::string why;
    auto first = makeHandshakeLibrary(nullptr, why);
    auto second = makeHandshakeLibrary(nullptr, why);
    ASSERT_NE(first, nullptr) << why;
    ASSERT_NE(second, nullptr) << why;
    (round % 2 == 0 ? first : second).reset();
    auto& kept = first ? first : second;
    X509Ptr parsed = reparse(chain[0].get(), kept->get());
    ASSERT_NE(parsed, nullptr);
    EXPECT_NE(X509_get0_pubkey(parsed.get()), nullptr);
    EXPECT_EQ(decoderCount(kept->get()), 6);
  }
  EXPECT_EQ(liveForwardings(), 0u);  // every reference to the default provider given back
}

TEST(LibraryContexts, EverySlotHasAHandshakeLibraryOfItsOwn) {
  LibraryContexts libraries(3);
  ASSERT_TRUE(libraries.handshakeNote().empty()) << libraries.handshakeNote();
  for (std::size_t slot = 0; slot < 3; ++slot) {
    ASSERT_NE(libraries.handshakesAt(slot), nullptr);
    EXPECT_NE(libraries.handshakesAt(slot), libraries.at(slot));
    EXPECT_EQ(decoderCount(libraries.handshakesAt(slot)), 6);
    for (std::size_t other = 0; other < slot; ++other) {
      EXPECT_NE(libraries.handshakesAt(slot), libraries.handshakesAt(other));
    }
  }
  EXPECT_EQ(libraries.handshakesAt(8), libraries.handshakesAt(2));
}

// An OpenSSL configuration that activates a provider besides the default one (as a FIPS setup
// does): no slot gets a handshake library context, the note says why, and contexts are built and
// handshake where their files are read, as before.
TEST(LibraryContexts, AnotherProviderInTheConfigurationKeepsHandshakesWhereFilesAreRead) {
  const std::string conf = ::testing::TempDir() + "/two-providers.cnf";
  std::ofstream(conf) << "openssl_conf = openssl_init\n"
                         "[openssl_init]\nproviders = provider_sect\n"
                         "[provider_sect]\ndefault = default_sect\nbase = base_sect\n"
                         "[default_sect]\nactivate = 1\n[base_sect]\nactivate = 1\n";
  const char* before = std::getenv("OPENSSL_CONF");
  const std::string saved = before != nullptr ? before : "";
  ::setenv("OPENSSL_CONF", conf.c_str(), 1);  // read by the further slots' library contexts
  LibraryContexts libraries(2);
  if (before != nullptr) {
    ::setenv("OPENSSL_CONF", saved.c_str(), 1);
  } else {
    ::unsetenv("OPENSSL_CONF");
  }
  ASSERT_TRUE(libraries.warnings().empty()) << libraries.warnings().front();
  EXPECT_NE(libraries.handshakeNote().find("base"), std::string::npos) << libraries.handshakeNote();
  EXPECT_EQ(libraries.handshakesAt(0), libraries.at(0));
  EXPECT_EQ(libraries.handshakesAt(1), libraries.at(1));
  EXPECT_EQ(liveForwardings(), 0u);  // the slot that could have had one gave it back

  config::TlsSettings settings;
  settings.cert_file = certPath("server-ec.pem");
  settings.key_file = certPath("server-ec.key");
  settings.client_ca_file = certPath("ca-bundle.pem");
  BuildReport report;
  TlsContextPtr initial = ContextStore::build(settings, report);
  ASSERT_NE(initial, nullptr);
  auto made = ContextStore::create(initial, settings, libraries);
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_EQ((*made)->current(0), initial);  // nothing to build again
  EXPECT_EQ((*made)->current(1)->handshakeLibrary(), libraries.at(1));
}

}  // namespace
}  // namespace mqtls::tls

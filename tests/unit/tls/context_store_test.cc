// ContextStore: the one place a listener's context is built and replaced. A rebuild from good
// material publishes a new snapshot while connections keep the old one; a rebuild from bad
// material keeps the old snapshot and reports the setting, the file and the reason. With a slot
// per worker, every slot has its own context (in its own library context) and all are replaced
// together.
#include <gtest/gtest.h>

#include <openssl/x509.h>

#include <algorithm>
#include <cstdlib>

#include "tls/context_store.h"
#include "tls/library_contexts.h"

namespace mqtls::tls {
namespace {

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

config::TlsSettings settingsFor(const std::string& server) {
  config::TlsSettings s;
  s.cert_file = certPath(server + ".pem");
  s.key_file = certPath(server + ".key");
  s.client_ca_file = certPath("ca-bundle.pem");
  s.crl_files = {certPath("crl.pem")};
  return s;
}

ContextStore storeFor(const std::string& server) {
  BuildReport report;
  TlsContextPtr initial = ContextStore::build(settingsFor(server), report);
  EXPECT_NE(initial, nullptr);
  return ContextStore(initial);
}

// The key type of the certificate a context serves: EVP_PKEY_EC or EVP_PKEY_RSA.
int servedKeyType(const TlsContextPtr& context) {
  X509* leaf = SSL_CTX_get0_certificate(context->raw());
  return leaf == nullptr ? -1 : EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
}

TEST(ContextStore, RebuildPublishesTheNewContextAndLeavesTheOldOneIntact) {
  ContextStore store = storeFor("server-ec");
  TlsContextPtr held = store.current();  // as an established connection holds it
  BuildReport report;
  ASSERT_TRUE(store.rebuild(settingsFor("server-rsa"), report));
  EXPECT_TRUE(report.errors.empty());
  ASSERT_NE(store.current(), held);
  EXPECT_EQ(servedKeyType(store.current()), EVP_PKEY_RSA);
  EXPECT_EQ(servedKeyType(held), EVP_PKEY_EC);  // the old snapshot is untouched
  EXPECT_NE(held->newSsl(), nullptr);
}

TEST(ContextStore, FailedRebuildKeepsTheOldContextAndNamesFileAndReason) {
  ContextStore store = storeFor("server-ec");
  TlsContextPtr before = store.current();
  auto bad = settingsFor("server-ec");
  bad.key_file = certPath("server-rsa.key");  // a valid key, but not the certificate's
  BuildReport report;
  EXPECT_FALSE(store.rebuild(bad, report));
  EXPECT_EQ(store.current(), before);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors[0].key, "key");
  EXPECT_NE(report.errors[0].message.find("server-ec.pem"), std::string::npos)
      << report.errors[0].message;
  EXPECT_NE(report.errors[0].message.find("does not match"), std::string::npos)
      << report.errors[0].message;
}

TEST(ContextStore, MissingFileIsReportedWithItsPath) {
  ContextStore store = storeFor("server-ec");
  TlsContextPtr before = store.current();
  auto bad = settingsFor("server-ec");
  bad.crl_files = {certPath("no-such.crl")};
  BuildReport report;
  EXPECT_FALSE(store.rebuild(bad, report));
  EXPECT_EQ(store.current(), before);
  ASSERT_FALSE(report.errors.empty());
  EXPECT_EQ(report.errors[0].key, "crl[0]");
  EXPECT_NE(report.errors[0].message.find("no-such.crl"), std::string::npos);
}

TEST(ContextStore, ReplaceIgnoresNull) {
  ContextStore store = storeFor("server-ec");
  TlsContextPtr before = store.current();
  store.replace(nullptr);
  EXPECT_EQ(store.current(), before);
}

// The provider instance behind a key: each library context loads providers of its own, so keys
// read into different library contexts have different ones.
const OSSL_PROVIDER* providerOf(EVP_PKEY* key) {
  return key == nullptr ? nullptr : EVP_PKEY_get0_provider(key);
}

// The providers of the served certificate's key, the private key, and the first client CA's
// key of a context: where the context's material was read into.
std::vector<const OSSL_PROVIDER*> materialProviders(const TlsContextPtr& context) {
  SSL_CTX* ctx = context->raw();
  X509* ca = nullptr;
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
  for (int i = 0; i < sk_X509_OBJECT_num(objects) && ca == nullptr; ++i) {
    ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
  }
  return {providerOf(X509_get0_pubkey(SSL_CTX_get0_certificate(ctx))),
          providerOf(SSL_CTX_get0_privatekey(ctx)),
          providerOf(ca != nullptr ? X509_get0_pubkey(ca) : nullptr)};
}

// A store with a slot per worker: each slot its own context, built in its own library context;
// a rebuild replaces every slot at once with one generation, a failed one none.
TEST(ContextStore, EveryWorkerSlotHasItsOwnContextAndRebuildsTogether) {
  LibraryContexts libraries(3);
  ASSERT_TRUE(libraries.warnings().empty());
  EXPECT_EQ(libraries.at(0), nullptr);
  ASSERT_NE(libraries.at(1), nullptr);
  ASSERT_NE(libraries.at(2), nullptr);
  EXPECT_NE(libraries.at(1), libraries.at(2));
  EXPECT_EQ(libraries.at(7), libraries.at(2));
  BuildReport report;
  TlsContextPtr initial = ContextStore::build(settingsFor("server-ec"), report);
  ASSERT_NE(initial, nullptr);
  auto made = ContextStore::create(initial, settingsFor("server-ec"), libraries);
  ASSERT_TRUE(made.ok()) << made.error().message;
  ContextStore& store = **made;
  // Slot 0 too is built again: the startup check made its SSL_CTX where its files were read,
  // each slot's SSL_CTX belongs in the slot's handshake library context.
  EXPECT_NE(store.current(0), initial);
  ASSERT_TRUE(libraries.handshakeNote().empty()) << libraries.handshakeNote();
  for (std::size_t slot = 0; slot < 3; ++slot) {
    EXPECT_EQ(store.current(slot)->library(), libraries.at(slot));
    EXPECT_EQ(store.current(slot)->handshakeLibrary(), libraries.handshakesAt(slot));
    EXPECT_NE(libraries.handshakesAt(slot), libraries.at(slot));
    EXPECT_EQ(servedKeyType(store.current(slot)), EVP_PKEY_EC);
    // Certificate, key and CAs were read into the slot's library context: their providers
    // are its own, differing from every other slot's.
    for (const OSSL_PROVIDER* provider : materialProviders(store.current(slot))) {
      ASSERT_NE(provider, nullptr);
      for (std::size_t other = 0; other < 3; ++other) {
        if (other != slot) {
          EXPECT_NE(provider, materialProviders(store.current(other))[0]) << slot << other;
        }
      }
      EXPECT_EQ(provider, materialProviders(store.current(slot))[0]);
    }
  }
  EXPECT_TRUE(store.current(1)->sameTrustAs(*store.current(0)));
  EXPECT_EQ(store.current(9), store.current(2));

  std::vector<TlsContextPtr> held = {store.current(0), store.current(1), store.current(2)};
  ASSERT_TRUE(store.rebuild(settingsFor("server-rsa"), report));
  for (std::size_t slot = 0; slot < 3; ++slot) {
    EXPECT_NE(store.current(slot), held[slot]);
    EXPECT_EQ(store.current(slot)->library(), libraries.at(slot));
    EXPECT_EQ(store.current(slot)->handshakeLibrary(), libraries.handshakesAt(slot));
    EXPECT_EQ(servedKeyType(store.current(slot)), EVP_PKEY_RSA);
    EXPECT_EQ(store.current(slot)->reloadGeneration(), 1u);
    EXPECT_EQ(servedKeyType(held[slot]), EVP_PKEY_EC);  // connections keep theirs
  }
  auto bad = settingsFor("server-ec");
  bad.key_file = certPath("server-rsa.key");
  BuildReport failed;
  EXPECT_FALSE(store.rebuild(bad, failed));
  ASSERT_EQ(failed.errors.size(), 1u);  // reported once, not once per slot
  for (std::size_t slot = 0; slot < 3; ++slot) {
    EXPECT_EQ(servedKeyType(store.current(slot)), EVP_PKEY_RSA);
  }
  EXPECT_EQ(store.generation(), 1u);
}

// The trust files changed between the startup check's context and the further slots: every
// slot is built again, so all serve (and share a cache of verified chains under) one trust.
TEST(ContextStore, CreateBuildsEverySlotAgainWhenTheTrustChangedSinceTheFirst) {
  LibraryContexts libraries(2);
  auto without_crl = settingsFor("server-ec");
  without_crl.crl_files.clear();
  BuildReport report;
  TlsContextPtr initial = ContextStore::build(without_crl, report);
  ASSERT_NE(initial, nullptr);
  auto made = ContextStore::create(initial, settingsFor("server-ec"), libraries);
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_NE((*made)->current(0), initial);
  EXPECT_FALSE((*made)->current(0)->sameTrustAs(*initial));
  EXPECT_TRUE((*made)->current(1)->sameTrustAs(*(*made)->current(0)));
}

// Without OpenSSL's configuration file, further slots still get library contexts of their own
// (unconfigured, as the default one is then).
TEST(LibraryContexts, AMissingOpenSslConfigurationFileIsNoError) {
  const char* before = std::getenv("OPENSSL_CONF");
  const std::string saved = before != nullptr ? before : "";
  ::setenv("OPENSSL_CONF", "/nonexistent/openssl.cnf", 1);
  LibraryContexts libraries(2);
  if (before != nullptr) {
    ::setenv("OPENSSL_CONF", saved.c_str(), 1);
  } else {
    ::unsetenv("OPENSSL_CONF");
  }
  EXPECT_TRUE(libraries.warnings().empty()) << libraries.warnings().front();
  ASSERT_NE(libraries.at(1), nullptr);
  BuildReport report;
  TlsContextPtr initial = ContextStore::build(settingsFor("server-ec"), report);
  ASSERT_NE(initial, nullptr);
  auto made = ContextStore::create(initial, settingsFor("server-ec"), libraries);
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_EQ((*made)->current(1)->library(), libraries.at(1));
  EXPECT_EQ(servedKeyType((*made)->current(1)), EVP_PKEY_EC);
}

// A key on a PKCS#11 token is logged in to at each build: every worker serves slot 0's context
// rather than logging in once per worker (the settings are never built here).
TEST(ContextStore, AKeyOnATokenKeepsOneContextForEveryWorker) {
  LibraryContexts libraries(3);
  BuildReport report;
  TlsContextPtr initial = ContextStore::build(settingsFor("server-ec"), report);
  ASSERT_NE(initial, nullptr);
  auto on_token = settingsFor("server-ec");
  on_token.key_file = "pkcs11:token=mqtls;object=server";
  auto made = ContextStore::create(initial, on_token, libraries);
  ASSERT_TRUE(made.ok()) << made.error().message;
  for (std::size_t slot = 0; slot < 3; ++slot) {
    EXPECT_EQ((*made)->current(slot), initial);
  }
  auto site_on_token = settingsFor("server-ec");
  site_on_token.sites.push_back({});
  site_on_token.sites.back().names = {"a.example"};
  site_on_token.sites.back().tls = on_token;
  made = ContextStore::create(initial, site_on_token, libraries);
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_EQ((*made)->current(2), initial);
}

TEST(ContextStore, CreateFailsWithTheProblemsOfASlotBuiltAfterTheCheck) {
  LibraryContexts libraries(2);
  BuildReport report;
  TlsContextPtr initial = ContextStore::build(settingsFor("server-ec"), report);
  ASSERT_NE(initial, nullptr);
  auto gone = settingsFor("server-ec");
  gone.client_ca_file = certPath("no-such-ca.pem");  // as if the file vanished after the check
  auto made = ContextStore::create(initial, gone, libraries);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message.find("tls.client_ca: "), std::string::npos)
      << made.error().message;
  EXPECT_NE(made.error().message.find("no-such-ca.pem"), std::string::npos);
}

TEST(ContextFiles, ListsEveryFileTheContextReadsOnce) {
  auto s = settingsFor("server-ec");
  s.crl_files.push_back(certPath("crl-chain.pem"));
  s.crl_files.push_back(certPath("crl.pem"));  // listed twice in the config
  std::vector<std::string> expected = {s.cert_file, s.key_file, s.client_ca_file,
                                       certPath("crl.pem"), certPath("crl-chain.pem")};
  EXPECT_EQ(contextFiles(s), expected);
  s.client_auth = config::ClientAuth::None;  // CA and CRLs are not read then
  expected = {s.cert_file, s.key_file};
  EXPECT_EQ(contextFiles(s), expected);
}

TEST(ContextFiles, KeyAndCertificateDisagreeOnlyWhenBothReadAndDiffer) {
  auto s = settingsFor("server-ec");
  EXPECT_FALSE(keyAndCertificateDisagree(s));
  s.key_file = certPath("server-rsa.key");
  EXPECT_TRUE(keyAndCertificateDisagree(s));
  s.key_file = certPath("no-such.key");
  EXPECT_FALSE(keyAndCertificateDisagree(s));  // unreadable: an ordinary build error
}

TEST(ContextFiles, AKeyOnATokenIsNotAFileButItsPinFileIs) {
  config::TlsSettings s;
  s.cert_file = "/etc/mqtls/server.pem";
  s.client_auth = config::ClientAuth::None;
  s.key_file = "pkcs11:token=mqtls;object=server?pin-value=1234";
  EXPECT_EQ(contextFiles(s), std::vector<std::string>{"/etc/mqtls/server.pem"});
  s.key_file = "pkcs11:token=mqtls;object=server?pin-source=file:/run/secrets/pin";
  EXPECT_EQ(contextFiles(s),
            (std::vector<std::string>{"/etc/mqtls/server.pem", "/run/secrets/pin"}));
}

}  // namespace
}  // namespace mqtls::tls

// ContextStore: the one place a listener's context is built and replaced. A rebuild from good
// material publishes a new snapshot while connections keep the old one; a rebuild from bad
// material keeps the old snapshot and reports the setting, the file and the reason.
#include <gtest/gtest.h>

#include <openssl/x509.h>

#include <algorithm>

#include "tls/context_store.h"

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

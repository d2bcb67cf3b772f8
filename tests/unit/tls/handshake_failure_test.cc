// Handshake failure classification: each verify result and OpenSSL error maps to its reason,
// and the material facts list what a listener loads with its expiry dates.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "tls/context.h"
#include "tls/context_store.h"
#include "tls/material_facts.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace {

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

config::TlsSettings goodSettings() {
  config::TlsSettings s;
  s.cert_file = certPath("server-ec.pem");
  s.key_file = certPath("server-ec.key");
  s.client_ca_file = certPath("ca-bundle.pem");
  s.crl_files = {certPath("crl.pem")};
  return s;
}

class Classify : public ::testing::Test {
 protected:
  void SetUp() override {
    BuildReport report;
    context_ = ContextStore::build(goodSettings(), report);
    ASSERT_NE(context_, nullptr);
    ssl_ = context_->newSsl();
    ASSERT_NE(ssl_, nullptr);
  }
  HandshakeFailure withVerifyResult(long verify) {
    SSL_set_verify_result(ssl_.get(), verify);
    return classifyHandshakeFailure(ssl_.get(), {});
  }
  HandshakeFailure withError(int reason) {
    SSL_set_verify_result(ssl_.get(), X509_V_OK);
    // libevent's first entry is SSL_get_error()'s code (library 0): skipped by the classifier.
    return classifyHandshakeFailure(ssl_.get(), {SSL_ERROR_SSL, ERR_PACK(ERR_LIB_SSL, 0, reason)});
  }
  TlsContextPtr context_;
  SslPtr ssl_;
};

TEST_F(Classify, VerifyResultsAreRefined) {
  const std::pair<long, const char*> cases[] = {
      {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "unknown_ca"},
      {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "unknown_ca"},
      {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "unknown_ca"},
      {X509_V_ERR_CERT_SIGNATURE_FAILURE, "unknown_ca"},
      {X509_V_ERR_CERT_HAS_EXPIRED, "expired"},
      {X509_V_ERR_CERT_NOT_YET_VALID, "not_yet_valid"},
      {X509_V_ERR_CERT_REVOKED, "revoked"},
      {X509_V_ERR_CRL_HAS_EXPIRED, "crl_expired"},
      {X509_V_ERR_INVALID_PURPOSE, "bad_certificate"},
      {X509_V_ERR_UNABLE_TO_GET_CRL, "bad_certificate"},
  };
  for (const auto& [verify, reason] : cases) {
    auto failure = withVerifyResult(verify);
    EXPECT_EQ(failure.reason, reason) << X509_verify_cert_error_string(verify);
    EXPECT_NE(failure.detail.find("certificate verify failed"), std::string::npos);
  }
}

TEST_F(Classify, OpenSslErrorsWithoutVerifyResult) {
  EXPECT_EQ(withError(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE).reason, "no_certificate");
  EXPECT_EQ(withError(SSL_R_UNSUPPORTED_PROTOCOL).reason, "protocol_version");
  EXPECT_EQ(withError(SSL_R_VERSION_TOO_LOW).reason, "protocol_version");
  EXPECT_EQ(withError(SSL_R_NO_SHARED_CIPHER).reason, "no_shared_cipher");
  EXPECT_EQ(withError(SSL_R_CERTIFICATE_VERIFY_FAILED).reason, "bad_certificate");
  EXPECT_EQ(withError(SSL_R_HTTP_REQUEST).reason, "not_tls");
  EXPECT_EQ(withError(SSL_R_WRONG_VERSION_NUMBER).reason, "not_tls");
  EXPECT_EQ(withError(SSL_R_BAD_SIGNATURE).reason, "error");
  SSL_set_verify_result(ssl_.get(), X509_V_OK);
  EXPECT_EQ(classifyHandshakeFailure(ssl_.get(), {}).reason, "eof");
  EXPECT_EQ(classifyHandshakeFailure(ssl_.get(), {SSL_ERROR_SYSCALL}).reason, "eof");
  EXPECT_EQ(classifyHandshakeFailure(nullptr, {}).reason, "eof");
}

TEST(MaterialFacts, ListsServerChainClientCasAndCrls) {
  auto settings = goodSettings();
  auto facts = materialFacts("mqtts", settings);
  ASSERT_EQ(facts.size(), 1u);
  EXPECT_EQ(facts[0].scope, "mqtts");
  auto chain = pem::readCertificates(settings.cert_file);
  ASSERT_TRUE(chain);
  ASSERT_FALSE(facts[0].certificates.empty());
  const auto& leaf = facts[0].certificates[0];
  EXPECT_EQ(leaf.role, "server");
  EXPECT_EQ(leaf.subject, pem::subjectLine(chain->front().get()));
  std::tm tm{};
  ASSERT_EQ(ASN1_TIME_to_tm(X509_get0_notAfter(chain->front().get()), &tm), 1);
  const time_t expected = timegm(&tm);
  EXPECT_EQ(leaf.not_after, static_cast<double>(expected));
  std::size_t chain_certs = 0, cas = 0;
  for (const auto& c : facts[0].certificates) {
    chain_certs += c.role == "chain";
    cas += c.role == "client_ca";
    EXPECT_GT(c.not_after, 1.0e9) << c.subject;
  }
  EXPECT_EQ(chain_certs, chain->size() - 1);
  EXPECT_GE(cas, 1u);
  ASSERT_FALSE(facts[0].crls.empty());
  EXPECT_GT(facts[0].crls[0].next_update, 1.0e9);
  EXPECT_FALSE(facts[0].crls[0].issuer.empty());

  settings.client_auth = config::ClientAuth::None;
  facts = materialFacts("mqtts", settings);
  for (const auto& c : facts[0].certificates) {
    EXPECT_NE(c.role, "client_ca");
  }
  EXPECT_TRUE(facts[0].crls.empty());
}

TEST(MaterialFacts, SitesAreScopedByTheirFirstName) {
  auto settings = goodSettings();
  config::SniSite site;
  site.names = {"b.example", "c.example"};
  site.tls = goodSettings();
  site.tls.cert_file = certPath("server-rsa.pem");
  site.tls.key_file = certPath("server-rsa.key");
  settings.sites.push_back(site);
  auto facts = materialFacts("mqtts", settings);
  ASSERT_EQ(facts.size(), 2u);
  EXPECT_EQ(facts[1].scope, "mqtts/b.example");
  ASSERT_FALSE(facts[1].certificates.empty());
  EXPECT_EQ(facts[1].certificates[0].role, "server");
}

TEST(ContextStore, EachPublishedContextCarriesTheNextReloadGeneration) {
  BuildReport report;
  auto first = ContextStore::build(goodSettings(), report);
  ASSERT_NE(first, nullptr);
  ContextStore store(first);
  EXPECT_EQ(store.current()->reloadGeneration(), 0u);
  EXPECT_TRUE(store.rebuild(goodSettings(), report));
  EXPECT_EQ(store.current()->reloadGeneration(), 1u);
  EXPECT_TRUE(store.rebuild(goodSettings(), report));
  EXPECT_EQ(store.current()->reloadGeneration(), 2u);
  EXPECT_EQ(store.generation(), 2u);
  EXPECT_EQ(first->reloadGeneration(), 0u);  // a connection's snapshot keeps its number
}

}  // namespace
}  // namespace mqtls::tls

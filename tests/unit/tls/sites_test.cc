// SNI sites and several certificates per context: name matching (exact over wildcard, one label,
// case and trailing dot), problems of a site reported under its own key, one certificate per key
// type, and a site's own identity policy. (Sessions staying on their site: tests/integration/
// test_sni.py.)
#include <gtest/gtest.h>

#include "tls/context.h"
#include "tls/handshake_library.h"

namespace mqtls::tls {
namespace {

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

config::TlsSettings listenerSettings() {
  config::TlsSettings s;
  s.cert_file = certPath("server-ec.pem");
  s.key_file = certPath("server-ec.key");
  s.client_ca_file = certPath("ca-bundle.pem");
  return s;
}

config::SniSite site(std::vector<std::string> names, const std::string& stem) {
  config::SniSite out;
  out.names = std::move(names);
  out.tls = listenerSettings();
  out.tls.cert_file = certPath(stem + ".pem");
  out.tls.key_file = certPath(stem + ".key");
  return out;
}

TlsContextPtr withSites() {
  auto s = listenerSettings();
  s.sites.push_back(site({"a.example.test", "*.a.example.test"}, "server-rsa"));
  s.sites.push_back(site({"exact.a.example.test"}, "server-ec"));
  s.sites.back().identity.emplace();
  s.sites.back().identity->username_from = {config::IdentitySource::SanUri};
  auto built = TlsContext::create(s);
  EXPECT_TRUE(built.ok()) << built.error().message;
  return built.ok() ? *built : nullptr;
}

TEST(TlsSites, NamesPickSites) {
  auto context = withSites();
  ASSERT_NE(context, nullptr);
  const TlsContext* rsa = &context->siteFor("a.example.test");
  const TlsContext* exact = &context->siteFor("exact.a.example.test");
  EXPECT_NE(rsa, context.get());
  EXPECT_NE(exact, context.get());
  EXPECT_NE(exact, rsa);  // an exact name wins over the wildcard that also matches it
  EXPECT_EQ(&context->siteFor("A.Example.TEST."), rsa);
  EXPECT_EQ(&context->siteFor("dev.a.example.test"), rsa);
  EXPECT_EQ(&context->siteFor("x.dev.a.example.test"), context.get());  // one label only
  EXPECT_EQ(&context->siteFor("example.test"), context.get());
  EXPECT_EQ(&context->siteFor(""), context.get());
  EXPECT_EQ(context->identityPolicy(), nullptr);
  ASSERT_NE(exact->identityPolicy(), nullptr);
  EXPECT_EQ(exact->identityPolicy()->username_from.front(), config::IdentitySource::SanUri);
}

// A site's SSL_CTX lives where its listener's does: in the slot's handshake library context,
// its files read in the slot's library context.
TEST(TlsSites, SitesAreBuiltInTheirListenersLibraryContexts) {
  std::string why;
  auto handshakes = makeHandshakeLibrary(nullptr, why);
  ASSERT_NE(handshakes, nullptr) << why;
  auto s = listenerSettings();
  s.sites.push_back(site({"a.example.test"}, "server-rsa"));
  BuildReport report;
  auto context = TlsContext::build(s, report, {}, BuildSlot{nullptr, handshakes->get()});
  ASSERT_NE(context, nullptr);
  const TlsContext& site_context = context->siteFor("a.example.test");
  ASSERT_NE(&site_context, context.get());
  EXPECT_EQ(context->handshakeLibrary(), handshakes->get());
  EXPECT_EQ(site_context.handshakeLibrary(), handshakes->get());
  EXPECT_EQ(site_context.library(), nullptr);
}

TEST(TlsSites, SiteProblemsCarryTheSiteKey) {
  auto s = listenerSettings();
  s.sites.push_back(site({"ok.example.test"}, "server-ec"));
  s.sites.push_back(site({"bad.example.test"}, "server-ec"));
  s.sites.back().tls.key_file = certPath("server-mismatch.key");
  BuildReport report;
  EXPECT_EQ(TlsContext::build(s, report), nullptr);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors[0].key, "sni[1].key");
}

TEST(TlsSites, OneCertificatePerKeyType) {
  auto s = listenerSettings();
  s.more_certificates.push_back({certPath("server-rsa.pem"), certPath("server-rsa.key")});
  BuildReport good;
  EXPECT_NE(TlsContext::build(s, good), nullptr);
  EXPECT_TRUE(good.errors.empty());
  s.more_certificates.push_back({certPath("server-ec.pem"), certPath("server-ec.key")});
  BuildReport twice;
  EXPECT_EQ(TlsContext::build(s, twice), nullptr);
  ASSERT_EQ(twice.errors.size(), 1u);
  EXPECT_EQ(twice.errors[0].key, "certificates[2].key");
  EXPECT_NE(twice.errors[0].message.find("one certificate per key type"), std::string::npos);
}

}  // namespace
}  // namespace mqtls::tls

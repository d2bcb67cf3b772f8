// TLS snapshot building: good material builds, each kind of bad material is refused with a
// message naming the key at fault, and handshakes over memory BIOs follow the verify policy.
#include <gtest/gtest.h>

#include <openssl/err.h>

#include "tls/context.h"
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

TEST(TlsContext, BuildsFromGoodMaterial) {
  auto context = TlsContext::create(goodSettings());
  ASSERT_TRUE(context.ok()) << context.error().message;
  EXPECT_EQ(SSL_CTX_get_min_proto_version((*context)->raw()), TLS1_2_VERSION);
  EXPECT_NE(SSL_CTX_get_options((*context)->raw()) & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_NE(SSL_CTX_get_options((*context)->raw()) & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(SSL_CTX_get_mode((*context)->raw()) & SSL_MODE_RELEASE_BUFFERS, 0u)
      << "an idle connection must not keep its record buffers";
}

TEST(TlsContext, RsaServerCertificate) {
  auto s = goodSettings();
  s.cert_file = certPath("server-rsa.pem");
  s.key_file = certPath("server-rsa.key");
  EXPECT_TRUE(TlsContext::create(s).ok());
}

TEST(TlsContext, MismatchedKeyIsRefused) {
  auto s = goodSettings();
  s.key_file = certPath("server-mismatch.key");
  auto context = TlsContext::create(s);
  ASSERT_FALSE(context.ok());
  EXPECT_NE(context.error().message.find("tls.key"), std::string::npos);
  EXPECT_NE(context.error().message.find("does not match"), std::string::npos);
}

TEST(TlsContext, ExpiredServerCertificateIsRefused) {
  auto s = goodSettings();
  s.cert_file = certPath("server-expired.pem");
  s.key_file = certPath("server-expired.key");
  auto context = TlsContext::create(s);
  ASSERT_FALSE(context.ok());
  EXPECT_NE(context.error().message.find("expired"), std::string::npos);
}

TEST(TlsContext, AllProblemsReportedTogether) {
  auto s = goodSettings();
  s.key_file = "/nonexistent/key.pem";
  s.client_ca_file = "/nonexistent/ca.pem";
  s.ciphers = "NOT-A-CIPHER";
  auto context = TlsContext::create(s);
  ASSERT_FALSE(context.ok());
  const auto& message = context.error().message;
  EXPECT_NE(message.find("tls.key"), std::string::npos);
  EXPECT_NE(message.find("tls.client_ca"), std::string::npos);
  EXPECT_NE(message.find("tls.ciphers"), std::string::npos);
}

// What one handshake ended with, as the server saw it.
struct Outcome {
  bool done = false;
  long verify = X509_V_OK;
  std::string cipher;
};

// Runs a client (of `client_ctx`) and server handshake over memory BIOs until both finish or one
// fails.
Outcome runHandshake(const TlsContext& server_ctx, SSL_CTX* client_ctx) {
  SslPtr client(SSL_new(client_ctx));
  SslPtr server = server_ctx.newSsl();
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  bool client_done = false;
  Outcome outcome;
  for (int round = 0; round < 20 && !(client_done && outcome.done); ++round) {
    if (!client_done) {
      int rc = SSL_do_handshake(client.get());
      if (rc == 1) {
        client_done = true;
      } else if (SSL_get_error(client.get(), rc) != SSL_ERROR_WANT_READ) {
        break;
      }
    }
    if (!outcome.done) {
      int rc = SSL_do_handshake(server.get());
      if (rc == 1) {
        outcome.done = true;
      } else if (SSL_get_error(server.get(), rc) != SSL_ERROR_WANT_READ) {
        break;
      }
    }
  }
  // TLS 1.3: the server's verdict on the client certificate reaches the client afterwards.
  char byte;
  SSL_read(client.get(), &byte, 1);
  outcome.verify = SSL_get_verify_result(server.get());
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(server.get())) {
    outcome.cipher = SSL_CIPHER_get_name(cipher);
  }
  ERR_clear_error();
  return outcome;
}

// A client context presenting `cert` with `key` (none if empty).
SslCtxPtr clientContext(const std::string& client_cert, const std::string& client_key) {
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  if (!client_cert.empty()) {
    SSL_CTX_use_certificate_chain_file(client_ctx.get(), certPath(client_cert).c_str());
    SSL_CTX_use_PrivateKey_file(client_ctx.get(), certPath(client_key).c_str(), SSL_FILETYPE_PEM);
  }
  return client_ctx;
}

bool handshake(const TlsContext& server_ctx, const std::string& client_cert,
               const std::string& client_key, long* verify_result) {
  SslCtxPtr client_ctx = clientContext(client_cert, client_key);
  const Outcome outcome = runHandshake(server_ctx, client_ctx.get());
  *verify_result = outcome.verify;
  return outcome.done;
}

// The default suites prefer AES-128-GCM over the AES-256-GCM an OpenSSL client lists first, keep
// AES-256-GCM for a client that offers nothing else, and give ChaCha20 to a client that puts it
// first (a device without AES instructions); a configured list is the server's order.
TEST(TlsContext, DefaultSuitesPreferAes128AndChaChaForClientsThatAskForIt) {
  struct Case {
    config::TlsVersion version;
    const char* client_offer;  // TLS 1.2 cipher list or TLS 1.3 ciphersuites; "" = OpenSSL's
    const char* server_list;   // the listener's setting; "" = the default
    const char* expected;
  };
  const Case cases[] = {
      {config::TlsVersion::Tls13, "", "", "TLS_AES_128_GCM_SHA256"},
      {config::TlsVersion::Tls13, "TLS_AES_256_GCM_SHA384", "", "TLS_AES_256_GCM_SHA384"},
      {config::TlsVersion::Tls13, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256", "",
       "TLS_CHACHA20_POLY1305_SHA256"},
      {config::TlsVersion::Tls13, "", "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
       "TLS_AES_256_GCM_SHA384"},
      {config::TlsVersion::Tls12, "", "", "ECDHE-ECDSA-AES128-GCM-SHA256"},
      {config::TlsVersion::Tls12, "ECDHE-ECDSA-AES256-GCM-SHA384", "",
       "ECDHE-ECDSA-AES256-GCM-SHA384"},
      {config::TlsVersion::Tls12, "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256", "",
       "ECDHE-ECDSA-CHACHA20-POLY1305"},
  };
  for (const Case& c : cases) {
    config::TlsSettings settings = goodSettings();
    settings.max_version = c.version;
    (c.version == config::TlsVersion::Tls13 ? settings.ciphersuites : settings.ciphers) =
        c.server_list;
    auto context = TlsContext::create(settings);
    ASSERT_TRUE(context.ok()) << context.error().message;
    SslCtxPtr client = clientContext("client.pem", "client.key");
    if (c.version == config::TlsVersion::Tls12) {
      // A TLS 1.2 device: no TLS 1.3 suites ahead of its own list in the ClientHello.
      SSL_CTX_set_max_proto_version(client.get(), TLS1_2_VERSION);
    }
    if (*c.client_offer != '\0') {
      ASSERT_EQ(c.version == config::TlsVersion::Tls13
                    ? SSL_CTX_set_ciphersuites(client.get(), c.client_offer)
                    : SSL_CTX_set_cipher_list(client.get(), c.client_offer),
                1);
    }
    const Outcome outcome = runHandshake(**context, client.get());
    ASSERT_TRUE(outcome.done) << c.client_offer;
    EXPECT_EQ(outcome.cipher, c.expected)
        << "client offers '" << c.client_offer << "', server list '" << c.server_list << "'";
  }
}

TEST(TlsContext, HandshakeFollowsVerifyPolicy) {
  auto context = TlsContext::create(goodSettings());
  ASSERT_TRUE(context.ok());
  long verify = 0;
  EXPECT_TRUE(handshake(**context, "client.pem", "client.key", &verify));
  EXPECT_EQ(verify, X509_V_OK);
  EXPECT_FALSE(handshake(**context, "", "", &verify));
  EXPECT_FALSE(handshake(**context, "client-expired.pem", "client-expired.key", &verify));
  EXPECT_EQ(verify, X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_FALSE(handshake(**context, "client-revoked.pem", "client-revoked.key", &verify));
  EXPECT_EQ(verify, X509_V_ERR_CERT_REVOKED);
  EXPECT_FALSE(handshake(**context, "client-wrongca.pem", "client-wrongca.key", &verify));
  EXPECT_NE(verify, X509_V_OK);
}

TEST(TlsContext, OptionalClientAuthAcceptsNoCertificate) {
  auto s = goodSettings();
  s.client_auth = config::ClientAuth::Optional;
  auto context = TlsContext::create(s);
  ASSERT_TRUE(context.ok());
  long verify = 0;
  EXPECT_TRUE(handshake(**context, "", "", &verify));
  EXPECT_FALSE(handshake(**context, "client-expired.pem", "client-expired.key", &verify));
}

TEST(TlsContext, ChainCrlCheckNeedsEveryLevel) {
  auto s = goodSettings();
  s.crl_check = config::CrlCheck::Chain;
  s.crl_files = {certPath("crl-chain.pem")};
  auto context = TlsContext::create(s);
  ASSERT_TRUE(context.ok());
  long verify = 0;
  EXPECT_TRUE(handshake(**context, "client.pem", "client.key", &verify));
  EXPECT_FALSE(handshake(**context, "client-revoked.pem", "client-revoked.key", &verify));
  // With only the intermediate's CRL, the root level has no CRL: chain mode must refuse.
  s.crl_files = {certPath("crl.pem")};
  auto strict = TlsContext::create(s);
  ASSERT_TRUE(strict.ok());
  EXPECT_FALSE(handshake(**strict, "client.pem", "client.key", &verify));
  EXPECT_EQ(verify, X509_V_ERR_UNABLE_TO_GET_CRL);
}

}  // namespace
}  // namespace mqtls::tls

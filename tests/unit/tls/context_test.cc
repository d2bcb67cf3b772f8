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

// Runs a client and server handshake over memory BIOs until both finish or one fails.
bool handshake(const TlsContext& server_ctx, const std::string& client_cert,
               const std::string& client_key, long* verify_result) {
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  if (!client_cert.empty()) {
    SSL_CTX_use_certificate_chain_file(client_ctx.get(), certPath(client_cert).c_str());
    SSL_CTX_use_PrivateKey_file(client_ctx.get(), certPath(client_key).c_str(), SSL_FILETYPE_PEM);
  }
  SslPtr client(SSL_new(client_ctx.get()));
  SslPtr server = server_ctx.newSsl();
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    if (!client_done) {
      int rc = SSL_do_handshake(client.get());
      if (rc == 1) {
        client_done = true;
      } else if (SSL_get_error(client.get(), rc) != SSL_ERROR_WANT_READ) {
        break;
      }
    }
    if (!server_done) {
      int rc = SSL_do_handshake(server.get());
      if (rc == 1) {
        server_done = true;
      } else if (SSL_get_error(server.get(), rc) != SSL_ERROR_WANT_READ) {
        break;
      }
    }
  }
  // TLS 1.3: the server's verdict on the client certificate reaches the client afterwards.
  char byte;
  SSL_read(client.get(), &byte, 1);
  *verify_result = SSL_get_verify_result(server.get());
  ERR_clear_error();
  return server_done;
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

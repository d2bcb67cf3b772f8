// OCSP stapling from a file (tls/stapling.h): responses made here with OpenSSL's OCSP API for the
// shared PKI's server certificate. A good response is checked and sent to a client that asks; a
// broken one is an error under "ocsp_staple" naming the file; an expired one is a warning and
// not sent.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "test_certs.h"
#include "tls/context_store.h"
#include "tls/stapling.h"

namespace mqtls::tls {
namespace {

namespace fs = std::filesystem;
using namespace mqtls::testing;

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

struct Pki {
  X509Ptr leaf = readCertificateFile(certPath("server-ec.pem"));  // the file's first certificate
  X509Ptr issuer = readCertificateFile(certPath("intermediate-ca.pem"));
  EvpPkeyPtr issuer_key = readKeyFile(certPath("intermediate-ca.key"));
};

// What a response says and who signs it.
struct Spec {
  X509* subject;  // the certificate it is about
  X509* signer;
  EVP_PKEY* key;
  int status = V_OCSP_CERTSTATUS_GOOD;
  long this_update = -60;  // seconds from now
  long next_update = 3600;
};

// The DER of a successful response built from `spec`.
std::string response(const Pki& pki, const Spec& spec) {
  OCSP_BASICRESP* basic = OCSP_BASICRESP_new();
  OCSP_CERTID* id = OCSP_cert_to_id(EVP_sha1(), spec.subject, pki.issuer.get());
  ASN1_TIME* this_update = X509_gmtime_adj(nullptr, spec.this_update);
  ASN1_TIME* next_update = X509_gmtime_adj(nullptr, spec.next_update);
  const bool revoked = spec.status == V_OCSP_CERTSTATUS_REVOKED;
  OCSP_basic_add1_status(basic, id, spec.status, revoked ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : 0,
                         revoked ? this_update : nullptr, this_update, next_update);
  OCSP_basic_sign(basic, spec.signer, spec.key, EVP_sha256(), nullptr, 0);
  OCSP_RESPONSE* resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic);
  unsigned char* der = nullptr;
  int size = i2d_OCSP_RESPONSE(resp, &der);
  std::string out(reinterpret_cast<char*>(der), size > 0 ? size : 0);
  OPENSSL_free(der);
  OCSP_RESPONSE_free(resp);
  OCSP_BASICRESP_free(basic);
  OCSP_CERTID_free(id);
  ASN1_TIME_free(this_update);
  ASN1_TIME_free(next_update);
  return out;
}

class Stapling : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mqtls-staple-XXXXXX").string();
    dir_ = fs::path(mkdtemp(pattern.data()));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return (dir_ / name).string();
  }
  config::TlsSettings settings(const std::string& staple) {
    config::TlsSettings s;
    s.cert_file = certPath("server-ec.pem");
    s.key_file = certPath("server-ec.key");
    s.client_auth = config::ClientAuth::None;
    s.ocsp_staple_file = staple;
    return s;
  }
  // The build's single error under ocsp_staple (empty if there is none).
  std::string buildError(const std::string& staple) {
    BuildReport report;
    EXPECT_EQ(ContextStore::build(settings(staple), report), nullptr);
    if (report.errors.size() != 1 || report.errors[0].key != "ocsp_staple") {
      ADD_FAILURE() << "expected one ocsp_staple error, got " << report.errors.size();
      return {};
    }
    EXPECT_NE(report.errors[0].message.find(staple), std::string::npos);
    EXPECT_NE(report.errors[0].message.find("; point 'ocsp_staple' at"), std::string::npos);
    return report.errors[0].message;
  }

  Pki pki_;
  fs::path dir_;
};

// The staple a client asking for certificate status receives (empty: none).
std::string stapleReceived(const TlsContext& context) {
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  SslPtr client(SSL_new(client_ctx.get()));
  SSL_set_tlsext_status_type(client.get(), TLSEXT_STATUSTYPE_ocsp);
  SslPtr server = context.newSsl();
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  for (int round = 0; round < 10; ++round) {
    SSL_do_handshake(client.get());
    SSL_do_handshake(server.get());
  }
  EXPECT_EQ(SSL_is_init_finished(client.get()), 1);
  const unsigned char* der = nullptr;
  long size = SSL_get_tlsext_status_ocsp_resp(client.get(), &der);
  ERR_clear_error();
  return der != nullptr && size > 0 ? std::string(reinterpret_cast<const char*>(der), size) : "";
}

TEST_F(Stapling, AGoodResponseIsCheckedAndSent) {
  std::string der = response(pki_, {pki_.leaf.get(), pki_.issuer.get(), pki_.issuer_key.get()});
  const std::string file = write("good.der", der);
  BuildReport report;
  auto context = ContextStore::build(settings(file), report);
  ASSERT_NE(context, nullptr) << (report.errors.empty() ? "" : report.errors[0].message);
  EXPECT_TRUE(report.warnings.empty());
  EXPECT_EQ(stapleReceived(*context), der);
  auto files = contextFiles(settings(file));
  EXPECT_NE(std::find(files.begin(), files.end(), file), files.end());  // a reload watches it
}

TEST_F(Stapling, NoStapleConfiguredSendsNone) {
  BuildReport report;
  auto context = ContextStore::build(settings(""), report);
  ASSERT_NE(context, nullptr);
  EXPECT_EQ(stapleReceived(*context), "");
}

TEST_F(Stapling, ADelegatedResponderOfTheIssuerIsAccepted) {
  EvpPkeyPtr key = ecKey();
  X509Ptr responder =
      makeCertificate(key.get(), "ocsp responder", -60, 3600, pki_.issuer.get(), nullptr);
  X509_EXTENSION* eku =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_ext_key_usage, const_cast<char*>("OCSPSigning"));
  X509_add_ext(responder.get(), eku, -1);
  X509_EXTENSION_free(eku);
  X509_sign(responder.get(), pki_.issuer_key.get(), EVP_sha256());
  const std::string file =
      write("delegated.der", response(pki_, {pki_.leaf.get(), responder.get(), key.get()}));
  BuildReport report;
  EXPECT_NE(ContextStore::build(settings(file), report), nullptr);
  EXPECT_TRUE(report.errors.empty()) << report.errors[0].message;
}

TEST_F(Stapling, AnExpiredResponseIsAWarningAndNotSent) {
  Spec spec{pki_.leaf.get(), pki_.issuer.get(), pki_.issuer_key.get()};
  spec.this_update = -7200;
  spec.next_update = -3600;
  const std::string file = write("old.der", response(pki_, spec));
  BuildReport report;
  auto context = ContextStore::build(settings(file), report);
  ASSERT_NE(context, nullptr);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_EQ(report.warnings[0].key, "ocsp_staple");
  EXPECT_NE(report.warnings[0].message.find("past its nextUpdate, so it is not stapled"),
            std::string::npos);
  EXPECT_EQ(stapleReceived(*context), "");
}

TEST_F(Stapling, ARevokedStatusIsSentWithAWarning) {
  Spec spec{pki_.leaf.get(), pki_.issuer.get(), pki_.issuer_key.get()};
  spec.status = V_OCSP_CERTSTATUS_REVOKED;
  std::string der = response(pki_, spec);
  BuildReport report;
  auto context = ContextStore::build(settings(write("revoked.der", der)), report);
  ASSERT_NE(context, nullptr);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].message.find("is revoked"), std::string::npos);
  EXPECT_EQ(stapleReceived(*context), der);
}

TEST_F(Stapling, BrokenFilesAreErrorsNamingTheFile) {
  EXPECT_NE(buildError(write("junk.der", "junk")).find("holds no DER OCSP response"),
            std::string::npos);
  EXPECT_NE(buildError((dir_ / "missing.der").string()).find("cannot read"), std::string::npos);

  OCSP_RESPONSE* later = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, nullptr);
  unsigned char* der = nullptr;
  int size = i2d_OCSP_RESPONSE(later, &der);
  std::string trylater(reinterpret_cast<char*>(der), size);
  OPENSSL_free(der);
  OCSP_RESPONSE_free(later);
  EXPECT_NE(buildError(write("later.der", trylater)).find("status 'trylater'"), std::string::npos);
}

TEST_F(Stapling, AResponseAboutAnotherCertificateIsRefused) {
  X509Ptr client = readCertificateFile(certPath("client.pem"));
  const std::string file =
      write("other.der", response(pki_, {client.get(), pki_.issuer.get(), pki_.issuer_key.get()}));
  EXPECT_NE(buildError(file).find("not about the server certificate"), std::string::npos);
}

TEST_F(Stapling, AResponseSignedByAnUnrelatedKeyIsRefused) {
  EvpPkeyPtr key = ecKey();
  X509Ptr other = makeCertificate(key.get(), "some responder", -60, 3600, nullptr, nullptr);
  EXPECT_NE(
      buildError(write("other.der", response(pki_, {pki_.leaf.get(), other.get(), key.get()})))
          .find("neither the server certificate's issuer nor"),
      std::string::npos);
  // Named like the issuer: found as the issuer, but the signature is not the issuer's.
  X509Ptr impostor =
      makeCertificate(key.get(), "mqtls Test Intermediate CA", -60, 3600, nullptr, nullptr);
  EXPECT_NE(buildError(
                write("impostor.der", response(pki_, {pki_.leaf.get(), impostor.get(), key.get()})))
                .find("its signature does not verify"),
            std::string::npos);
}

TEST_F(Stapling, ALeafWithoutItsIssuerCannotBeChecked) {
  const std::string leaf_only = (dir_ / "leaf.pem").string();
  ASSERT_TRUE(writePem(leaf_only, certPem(pki_.leaf.get())));
  const std::string file = write(
      "good.der", response(pki_, {pki_.leaf.get(), pki_.issuer.get(), pki_.issuer_key.get()}));
  auto s = settings(file);
  s.cert_file = leaf_only;
  BuildReport report;
  EXPECT_EQ(ContextStore::build(s, report), nullptr);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_NE(report.errors[0].message.find("append its issuer's certificate"), std::string::npos);
}

TEST(StapleReading, ThisUpdateInTheFutureIsRefused) {
  Pki pki;
  Spec spec{pki.leaf.get(), pki.issuer.get(), pki.issuer_key.get()};
  spec.this_update = 86400;
  spec.next_update = 2 * 86400;
  std::string pattern = (fs::path(::testing::TempDir()) / "mqtls-staple-XXXXXX").string();
  fs::path dir(mkdtemp(pattern.data()));
  std::ofstream(dir / "future.der", std::ios::binary) << response(pki, spec);
  X509StackPtr chain(sk_X509_new_null());
  auto staple = readStaple((dir / "future.der").string(), pki.leaf.get(), pki.issuer.get(),
                           chain.get(), std::time(nullptr));
  ASSERT_FALSE(staple.ok());
  EXPECT_NE(staple.error().message.find("in the future"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mqtls::tls

// CRL items (tls/crl.h): PEM or DER told apart by content, several CRLs in one file, a directory
// of them (Kubernetes-style symlinks through "..data"), a file that is not a CRL; and the
// nextUpdate policy in real handshakes: strict refuses with "crl_expired", lenient accepts and
// marks the connection, and a stale CRL still revokes what it lists.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "test_certs.h"
#include "tls/context_store.h"
#include "tls/crl.h"

namespace mqtls::tls {
namespace {

namespace fs = std::filesystem;
using namespace mqtls::testing;

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

// A fresh directory under the test's temporary directory.
fs::path freshDir() {
  std::string pattern = (fs::path(::testing::TempDir()) / "mqtls-crl-XXXXXX").string();
  return fs::path(mkdtemp(pattern.data()));
}

void writeText(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

bool writeDer(const fs::path& path, X509_CRL* crl) {
  FILE* file = std::fopen(path.c_str(), "wb");
  const bool ok = file != nullptr && i2d_X509_CRL_fp(file, crl) == 1;
  return file != nullptr && std::fclose(file) == 0 && ok;
}

struct Issuer {
  X509Ptr cert = readCertificateFile(certPath("intermediate-ca.pem"));
  EvpPkeyPtr key = readKeyFile(certPath("intermediate-ca.key"));
};

// A CRL of the intermediate CA due at now+next_update seconds, revoking `revoked` if given.
X509CrlPtr crlOf(const Issuer& issuer, long next_update, X509* revoked = nullptr) {
  X509CrlPtr crl = makeCrl(issuer.cert.get(), issuer.key.get(), next_update - 7200, next_update);
  if (revoked != nullptr) {
    X509_REVOKED* entry = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(revoked));
    ASN1_TIME* when = X509_gmtime_adj(nullptr, -60);
    X509_REVOKED_set_revocationDate(entry, when);
    ASN1_TIME_free(when);
    X509_CRL_add0_revoked(crl.get(), entry);
    X509_CRL_sort(crl.get());
    X509_CRL_sign(crl.get(), issuer.key.get(), EVP_sha256());
  }
  return crl;
}

config::TlsSettings settingsWithCrl(const std::string& crl) {
  config::TlsSettings s;
  s.cert_file = certPath("server-ec.pem");
  s.key_file = certPath("server-ec.key");
  s.client_ca_file = certPath("ca-bundle.pem");
  s.crl_files = {crl};
  return s;
}

TEST(CrlFile, PemWithSeveralCrls) {
  auto crls = readCrlFile(certPath("crl-chain.pem"));
  ASSERT_TRUE(crls.ok()) << crls.error().message;
  EXPECT_EQ(crls->size(), 2u);
}

TEST(CrlFile, DerIsDetectedByContent) {
  Issuer issuer;
  fs::path dir = freshDir();
  ASSERT_TRUE(writeDer(dir / "intermediate.pem", crlOf(issuer, 3600).get()));  // name misleads
  auto crls = readCrlFile((dir / "intermediate.pem").string());
  ASSERT_TRUE(crls.ok()) << crls.error().message;
  EXPECT_EQ(crls->size(), 1u);
  fs::remove_all(dir);
}

TEST(CrlFile, AnythingElseIsRefusedNamingTheFile) {
  fs::path dir = freshDir();
  writeText(dir / "garbage.crl", "not a CRL at all");
  auto garbage = readCrlFile((dir / "garbage.crl").string());
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message.find("garbage.crl' holds neither PEM CRLs nor a DER CRL"),
            std::string::npos);
  auto cert = readCrlFile(certPath("client.pem"));
  ASSERT_FALSE(cert.ok());
  EXPECT_NE(cert.error().message.find("holds no PEM CRL"), std::string::npos);
  Issuer issuer;
  ASSERT_TRUE(writeDer(dir / "trailing.der", crlOf(issuer, 3600).get()));
  std::ofstream(dir / "trailing.der", std::ios::app) << "x";
  EXPECT_FALSE(readCrlFile((dir / "trailing.der").string()).ok());
  EXPECT_FALSE(readCrlFile((dir / "missing.crl").string()).ok());
  fs::remove_all(dir);
}

// A Kubernetes Secret volume: "..2024_x/" holds the data, "..data" links to it, and each key
// is a symlink "name -> ..data/name". Hidden entries and subdirectories are not CRL files.
TEST(CrlDirectory, ReadsEveryVisibleFileThroughSymlinks) {
  Issuer issuer;
  fs::path dir = freshDir();
  fs::create_directory(dir / "..2024_01_01");
  ASSERT_TRUE(writeDer(dir / "..2024_01_01" / "a.der", crlOf(issuer, 3600).get()));
  ASSERT_TRUE(
      writePem((dir / "..2024_01_01" / "b.pem").string(), crlPem(crlOf(issuer, 7200).get())));
  fs::create_directory_symlink("..2024_01_01", dir / "..data");
  fs::create_symlink("..data/a.der", dir / "a.der");
  fs::create_symlink("..data/b.pem", dir / "b.pem");
  writeText(dir / ".hidden", "ignored");
  fs::create_directory(dir / "sub");
  fs::create_symlink("..data/gone", dir / "dangling");

  std::vector<std::string> expected = {(dir / "a.der").string(), (dir / "b.pem").string()};
  EXPECT_EQ(crlDirectoryFiles(dir.string()), expected);
  auto loaded = readCrlItem(dir.string());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].file, expected[0]);
  EXPECT_EQ((*loaded)[1].file, expected[1]);

  // A reload watches the directory and digests each file it stands for (never the directory).
  auto s = settingsWithCrl(dir.string());
  EXPECT_EQ(contextDirectories(s), std::vector<std::string>{dir.string()});
  auto files = contextFiles(s);
  EXPECT_EQ(std::find(files.begin(), files.end(), dir.string()), files.end());
  EXPECT_NE(std::find(files.begin(), files.end(), expected[0]), files.end());
  EXPECT_NE(std::find(files.begin(), files.end(), expected[1]), files.end());
  BuildReport report;
  EXPECT_NE(ContextStore::build(s, report), nullptr);
  EXPECT_TRUE(report.errors.empty());
  fs::remove_all(dir);
}

TEST(CrlDirectory, ANonCrlFileInItIsAnErrorNamingIt) {
  Issuer issuer;
  fs::path dir = freshDir();
  ASSERT_TRUE(writeDer(dir / "good.der", crlOf(issuer, 3600).get()));
  writeText(dir / "notes.txt", "hello");
  BuildReport report;
  EXPECT_EQ(ContextStore::build(settingsWithCrl(dir.string()), report), nullptr);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors[0].key, "crl[0]");
  EXPECT_NE(report.errors[0].message.find((dir / "notes.txt").string()), std::string::npos);
  fs::remove_all(dir);
}

TEST(CrlDirectory, AnEmptyDirectoryIsAnError) {
  fs::path dir = freshDir();
  auto loaded = readCrlItem(dir.string());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("holds no CRL file"), std::string::npos);
  fs::remove_all(dir);
}

// A client handshake over memory BIOs against `context` with certificate `name`.pem/.key.
struct Outcome {
  bool ok = false;
  bool stale_mark = false;
  HandshakeFailure failure;
};
Outcome handshake(const TlsContext& context, const std::string& name) {
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_use_certificate_chain_file(client_ctx.get(), certPath(name + ".pem").c_str());
  SSL_CTX_use_PrivateKey_file(client_ctx.get(), certPath(name + ".key").c_str(), SSL_FILETYPE_PEM);
  SslPtr client(SSL_new(client_ctx.get()));
  SslPtr server = context.newSsl();
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  Outcome out;
  std::vector<unsigned long> errors;
  for (int round = 0; round < 20 && !out.ok; ++round) {
    SSL_do_handshake(client.get());
    int rc = SSL_do_handshake(server.get());
    if (rc == 1) {
      out.ok = true;
    } else if (SSL_get_error(server.get(), rc) != SSL_ERROR_WANT_READ) {
      while (unsigned long code = ERR_get_error()) {
        errors.push_back(code);
      }
      out.failure = classifyHandshakeFailure(server.get(), errors);
      break;
    }
  }
  out.stale_mark = acceptedWithStaleCrl(server.get());
  ERR_clear_error();
  return out;
}

TEST(CrlNextUpdate, StrictRefusesWithCrlExpiredAndWarnsAtBuild) {
  Issuer issuer;
  fs::path dir = freshDir();
  ASSERT_TRUE(writeDer(dir / "stale.der", crlOf(issuer, -3600).get()));
  BuildReport report;
  auto context = ContextStore::build(settingsWithCrl((dir / "stale.der").string()), report);
  ASSERT_NE(context, nullptr);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].message.find("are refused (CRL has expired)"), std::string::npos);
  Outcome out = handshake(*context, "client");
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.failure.reason, "crl_expired");
  EXPECT_FALSE(out.stale_mark);
  fs::remove_all(dir);
}

TEST(CrlNextUpdate, LenientAcceptsAndMarksButAListedCertificateIsStillRevoked) {
  Issuer issuer;
  X509Ptr revoked = readCertificateFile(certPath("client-revoked.pem"));
  fs::path dir = freshDir();
  ASSERT_TRUE(writeDer(dir / "stale.der", crlOf(issuer, -3600, revoked.get()).get()));
  auto s = settingsWithCrl((dir / "stale.der").string());
  s.crl_next_update = config::CrlNextUpdate::Lenient;
  BuildReport report;
  auto context = ContextStore::build(s, report);
  ASSERT_NE(context, nullptr);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].message.find("still accepted (crl_next_update lenient"),
            std::string::npos);
  Outcome good = handshake(*context, "client");
  EXPECT_TRUE(good.ok) << good.failure.detail;
  EXPECT_TRUE(good.stale_mark);
  Outcome bad = handshake(*context, "client-revoked");
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.failure.reason, "revoked");
  EXPECT_NE(bad.failure.detail.find("revoked"), std::string::npos);
  fs::remove_all(dir);
}

TEST(CrlNextUpdate, ACurrentCrlLeavesNoMark) {
  auto s = settingsWithCrl(certPath("crl.pem"));
  s.crl_next_update = config::CrlNextUpdate::Lenient;
  BuildReport report;
  auto context = ContextStore::build(s, report);
  ASSERT_NE(context, nullptr);
  EXPECT_TRUE(report.warnings.empty());
  Outcome out = handshake(*context, "client");
  EXPECT_TRUE(out.ok);
  EXPECT_FALSE(out.stale_mark);
  EXPECT_FALSE(acceptedWithStaleCrl(nullptr));
}

}  // namespace
}  // namespace mqtls::tls

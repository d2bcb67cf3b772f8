// The complete check of `mqtls --check` (startup_check.h): every problem the TLS context build
// finds is reported at the exact position of the setting it concerns, together with the YAML
// errors and in file order; a stale CRL is a warning, not an error.
#include <sys/wait.h>

#include <cstdio>

#include "../tls/test_certs.h"
#include "config_test_support.h"
#include "startup_check.h"

namespace mqtls::config::testing {
namespace {

using mqtls::testing::certPem;
using mqtls::testing::crlPem;
using mqtls::testing::keyPem;
using mqtls::testing::makeCertificate;
using mqtls::testing::makeCrl;
using mqtls::testing::readCertificateFile;
using mqtls::testing::readKeyFile;
using mqtls::testing::writePem;

// kMinimal with the server certificate and key files replaced (lines 4 and 5).
std::string withServer(const std::string& cert_file, const std::string& key_file) {
  return "listeners:\n  - port: 8883\n    tls:\n      cert: " + cert_file +
         "\n      key: " + key_file + "\n      client_ca: ${CERTS}/ca-bundle.pem\n";
}

// Writes an empty CRL of the test intermediate CA, due `next_update` seconds from now.
std::string writeCrl(const fs::path& path, long next_update) {
  X509Ptr ca = readCertificateFile(std::string(MQTLS_CERTS_DIR) + "/intermediate-ca.pem");
  EvpPkeyPtr ca_key = readKeyFile(std::string(MQTLS_CERTS_DIR) + "/intermediate-ca.key");
  EXPECT_TRUE(ca && ca_key);
  X509CrlPtr crl = makeCrl(ca.get(), ca_key.get(), -7200, next_update);
  EXPECT_TRUE(writePem(path.string(), crlPem(crl.get())));
  return path.string();
}

TEST_F(ConfigTest, ServerKeyOfAnotherCertificateIsAtKey) {
  expectOneError(load(withServer("${CERTS}/server-ec.pem", "${CERTS}/server-mismatch.key")), "5:12",
                 "listeners[0].tls.key",
                 "private key does not match certificate 'CN=localhost' (first certificate of '" +
                     cert("server-ec.pem") + "'); use the key the certificate was issued for");
}

TEST_F(ConfigTest, ChainInWrongOrderIsAtCert) {
  auto leaf = readCertificateFile(cert("server-ec.pem"));
  auto root = readCertificateFile(cert("root-ca.pem"));
  auto intermediate = readCertificateFile(cert("intermediate-ca.pem"));
  const std::string file = (dir_ / "misordered.pem").string();
  ASSERT_TRUE(
      writePem(file, certPem(leaf.get()), certPem(root.get()), certPem(intermediate.get())));
  const LoadResult result = load(withServer(file, "${CERTS}/server-ec.key"));
  ASSERT_EQ(result.errors.size(), 2u) << joinErrors(result);
  expectError(result.errors[0], "4:13", "listeners[0].tls.cert",
              "certificate 2 of '" + file + "' did not issue certificate 1; order the chain");
  expectError(result.errors[1], "4:13", "listeners[0].tls.cert",
              "certificate 3 of '" + file + "' did not issue certificate 2");
}

TEST_F(ConfigTest, CertificateTheSecurityLevelRefusesIsAtCert) {
  EvpPkeyPtr weak = mqtls::testing::rsaKey(512);
  ASSERT_TRUE(weak);
  X509Ptr cert = makeCertificate(weak.get(), "localhost", -60, 86400, nullptr, nullptr);
  const std::string cert_file = (dir_ / "weak.pem").string();
  const std::string key_file = (dir_ / "weak.key").string();
  ASSERT_TRUE(writePem(cert_file, certPem(cert.get())));
  ASSERT_TRUE(writePem(key_file, keyPem(weak.get())));
  const LoadResult result = load(withServer(cert_file, key_file));
  ASSERT_FALSE(result.errors.empty());
  expectError(result.errors[0], "4:13", "listeners[0].tls.cert", "OpenSSL refuses certificate");
  EXPECT_NE(result.errors[0].find("key too small"), std::string::npos) << result.errors[0];
}

TEST_F(ConfigTest, AlgorithmListsOpenSslRejectsAreAtTheirKeys) {
  const LoadResult result = load(std::string(kMinimal) +
                                 "      ciphers: NO-SUCH-CIPHER\n"
                                 "      ciphersuites: TLS_NO_SUCH_SUITE\n"
                                 "      groups: no-such-group\n");
  ASSERT_EQ(result.errors.size(), 3u) << joinErrors(result);
  expectError(result.errors[0], "7:16", "listeners[0].tls.ciphers",
              "OpenSSL accepts nothing in 'NO-SUCH-CIPHER'");
  expectError(result.errors[1], "8:21", "listeners[0].tls.ciphersuites", "TLS_NO_SUCH_SUITE");
  expectError(result.errors[2], "9:15", "listeners[0].tls.groups", "no-such-group");
}

TEST_F(ConfigTest, UnreadableCrlIsAtItsListItem) {
  const LoadResult list = load(std::string(kMinimal) + "      crl:\n        - ${CERTS}/crl.pem\n" +
                               "        - " + dir_.string() + "\n");
  // A directory stands for the files in it: here the configuration file, which is no CRL.
  expectOneError(list, "9:11", "listeners[0].tls.crl[1]",
                 "'" + (dir_ / "mqtls.yaml").string() + "' holds neither PEM CRLs nor a DER CRL");
  const LoadResult scalar = load(std::string(kMinimal) + "      crl: absent.crl\n");
  expectOneError(scalar, "7:12", "listeners[0].tls.crl",
                 "cannot read file '" + (dir_ / "absent.crl").string() + "'");
}

TEST_F(ConfigTest, CrlIndexSkipsItemsTheLoaderRefused) {
  // crl[1] is refused by the loader (empty path); the unreadable file is crl[2] in the YAML.
  const LoadResult result =
      load(std::string(kMinimal) + "      crl: [\"${CERTS}/crl.pem\", \"\", none.crl]\n");
  ASSERT_EQ(result.errors.size(), 2u) << joinErrors(result);
  expectError(result.errors[0], "7:33", "listeners[0].tls.crl[1]", "the file path is empty");
  expectError(result.errors[1], "7:37", "listeners[0].tls.crl[2]", "cannot read file");
}

TEST_F(ConfigTest, YamlAndTlsErrorsTogetherInFileOrder) {
  const LoadResult result = load(R"(listeners:
  - tls:
      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-mismatch.key
      client_ca: ${CERTS}/ca-bundle.pem
    port: 99999
  - port: 8884
    tls:
      cert: ${CERTS}/server-rsa.pem
      key: ${CERTS}/server-rsa.key
      client_auth: none
      groups: NOT-A-GROUP
log: {level: loud}
)");
  ASSERT_EQ(result.errors.size(), 4u) << joinErrors(result);
  expectError(result.errors[0], "4:12", "listeners[0].tls.key", "does not match");
  expectError(result.errors[1], "6:11", "listeners[0].port", "out of range");
  expectError(result.errors[2], "12:15", "listeners[1].tls.groups", "NOT-A-GROUP");
  expectError(result.errors[3], "13:14", "log.level", "loud");
}

TEST_F(ConfigTest, TlsProblemOfASettingTheLoaderRefusedIsNotRepeated) {
  ::unsetenv("MQTLS_TEST_UNSET");
  expectOneError(load(withServer("${MQTLS_TEST_UNSET}", "${CERTS}/server-ec.key")), "4:13",
                 "listeners[0].tls.cert", "environment variable 'MQTLS_TEST_UNSET' is not set");
  // An unknown client_auth leaves client_ca unread: no second error about it.
  expectOneError(load(std::string(kMinimal) + "      client_auth: sometimes\n"), "7:20",
                 "listeners[0].tls.client_auth", "sometimes");
}

TEST_F(ConfigTest, CrlCheckChainNeedsACrl) {
  expectOneError(load(std::string(kMinimal) + "      crl_check: chain\n"), "7:18",
                 "listeners[0].tls.crl_check", "add 'crl: [");
  loadOk(std::string(kMinimal) + "      crl_check: chain\n      crl: ${CERTS}/crl-chain.pem\n");
  loadOk(R"(listeners:
  - tls:
      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-ec.key
      client_auth: none
      crl_check: chain
)");
}

TEST_F(ConfigTest, CrlPastNextUpdateIsAWarning) {
  const std::string stale = writeCrl(dir_ / "stale.crl", -3600);
  const LoadResult result =
      load(std::string(kMinimal) + "      crl: [\"${CERTS}/crl.pem\", \"" + stale + "\"]\n");
  ASSERT_TRUE(result.ok()) << joinErrors(result);
  ASSERT_EQ(result.warnings.size(), 1u);
  const std::string& warning = result.warnings[0];
  expectError(warning, "7:33", "listeners[0].tls.crl[1]", "warning: the CRL of 'CN=mqtls Test");
  EXPECT_NE(warning.find("'" + stale + "' is past its nextUpdate (20"), std::string::npos)
      << warning;
  EXPECT_NE(warning.find("; fetch a current CRL"), std::string::npos) << warning;
  // A current CRL gives none.
  EXPECT_TRUE(
      load(std::string(kMinimal) + "      crl: " + writeCrl(dir_ / "fresh.crl", 3600) + "\n")
          .warnings.empty());
}

// Runs the real binary; returns its exit status and puts stdout and stderr in `output`.
int runMqtls(const std::string& args, std::string& output) {
  FILE* pipe = ::popen((std::string(MQTLS_BINARY) + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    return -1;
  }
  char buffer[4096];
  output.clear();
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) {
    output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(ConfigTest, CheckCommandPrintsYamlAndTlsErrorsTogether) {
  load(withServer("${CERTS}/server-ec.pem", "${CERTS}/server-mismatch.key") +
       "      ciphers: NOPE\nworkers: many\n");
  std::string output;
  EXPECT_EQ(runMqtls("--check --config " + path_, output), 2) << output;
  const std::string key_line = path_ + ":5:12: listeners[0].tls.key: private key does not match";
  const std::string cipher_line = path_ + ":7:16: listeners[0].tls.ciphers: OpenSSL accepts";
  const std::string workers_line = path_ + ":8:10: workers: ";
  ASSERT_NE(output.find(key_line), std::string::npos) << output;
  ASSERT_NE(output.find(cipher_line), std::string::npos) << output;
  ASSERT_NE(output.find(workers_line), std::string::npos) << output;
  EXPECT_LT(output.find(key_line), output.find(cipher_line));
  EXPECT_LT(output.find(cipher_line), output.find(workers_line));
  EXPECT_NE(output.find("3 configuration error(s)"), std::string::npos) << output;
}

TEST_F(ConfigTest, CheckCommandWarnsAboutAStaleCrlAndSucceeds) {
  const std::string stale = writeCrl(dir_ / "stale.crl", -60);
  load(std::string(kMinimal) + "      crl: " + stale + "\n");
  std::string output;
  EXPECT_EQ(runMqtls("--check --config " + path_, output), 0) << output;
  EXPECT_NE(output.find(path_ + ":7:12: listeners[0].tls.crl: warning: "), std::string::npos)
      << output;
  EXPECT_NE(output.find("configuration ok"), std::string::npos) << output;
}

}  // namespace
}  // namespace mqtls::config::testing

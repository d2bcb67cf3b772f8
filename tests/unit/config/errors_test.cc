// Every class of configuration error: reported as "file:line:column: key.path: ...", at the
// position of the offending value (or of the enclosing map for a missing key), all at once.
#include "config/loader.h"
#include "config_test_support.h"

namespace mqtls::config::testing {
namespace {

// kMinimal with the TLS lines replaced: `tls` is the text after "    tls:\n".
std::string withTls(const std::string& tls) {
  return "listeners:\n  - port: 8883\n    tls:\n" + tls;
}

TEST_F(ConfigTest, UnknownKeySuggestsClosestKey) {
  expectOneError(load(withTls(R"(      cetr: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-ec.key
      client_ca: ${CERTS}/ca-bundle.pem
)")),
                 "4:7", "listeners[0].tls.cetr", "unknown key 'cetr' (did you mean 'cert'?)");
}

TEST_F(ConfigTest, UnknownKeyFarFromAnyListsKnownKeys) {
  expectOneError(load(std::string(kMinimal) + "upstream:\n  brokerage: x\n"), "8:3",
                 "upstream.brokerage",
                 "unknown key 'brokerage'; remove it (known keys here: host, port, unix_socket, "
                 "connect_timeout)");
}

TEST_F(ConfigTest, KeysAreNotExpanded) {
  ::setenv("MQTLS_TEST_KEY", "workers", 1);
  expectOneError(load(std::string(kMinimal) + "${MQTLS_TEST_KEY}: 2\n"), "7:1", "${MQTLS_TEST_KEY}",
                 "unknown key '${MQTLS_TEST_KEY}'");
}

TEST_F(ConfigTest, DuplicateKey) {
  expectOneError(load(std::string(kMinimal) + "workers: 1\nworkers: 2\n"), "8:1", "workers",
                 "duplicate key 'workers'");
}

TEST_F(ConfigTest, MapWhereScalarExpected) {
  expectOneError(load(std::string(kMinimal) + "upstream:\n  port: {number: 1}\n"), "8:9",
                 "upstream.port", "expected an integer, got a map");
}

TEST_F(ConfigTest, ScalarWhereMapExpected) {
  expectOneError(load(std::string(kMinimal) + "limits: 5\n"), "7:9", "limits",
                 "expected a map of settings, got '5'");
}

TEST_F(ConfigTest, ListenersMustBeASequence) {
  expectOneError(load("listeners:\n  port: 8883\n"), "2:3", "listeners",
                 "expected a list of listeners, got a map");
}

TEST_F(ConfigTest, NonIntegerPort) {
  expectOneError(load(std::string(kMinimal) + "upstream:\n  port: mqtt\n"), "8:9", "upstream.port",
                 "expected an integer, got 'mqtt'; use an integer between 1 and 65535");
}

TEST_F(ConfigTest, OutOfRangeValues) {
  const LoadResult result = load(std::string(kMinimal) + R"(      verify_depth: 17
upstream:
  port: 65536
limits:
  max_connect_size: 1
  drain_timeout: 0s
workers: 257
)");
  ASSERT_EQ(result.errors.size(), 5u) << joinErrors(result);
  expectError(result.errors[0], "7:21", "listeners[0].tls.verify_depth", "between 1 and 16");
  expectError(result.errors[1], "9:9", "upstream.port", "between 1 and 65535");
  expectError(result.errors[2], "11:21", "limits.max_connect_size", "between 2 and 268435460");
  expectError(result.errors[3], "12:18", "limits.drain_timeout", "between 1ms and 168h");
  expectError(result.errors[4], "13:10", "workers", "between 1 and 256");
}

TEST_F(ConfigTest, UnknownWorkerScheduling) {
  expectOneError(load(std::string(kMinimal) + "worker_scheduling: fifo\n"), "7:20",
                 "worker_scheduling", "use one of: batch, normal");
}

TEST_F(ConfigTest, BadDurationAndSizeFormats) {
  const LoadResult result =
      load(std::string(kMinimal) + "limits:\n  connect_timeout: 10 s\n  buffer_limit: 64KB\n");
  ASSERT_EQ(result.errors.size(), 2u) << joinErrors(result);
  expectError(result.errors[0], "8:20", "limits.connect_timeout", "unit ms, s, m or h");
  expectError(result.errors[1], "9:17", "limits.buffer_limit", "suffix KiB or MiB");
}

TEST_F(ConfigTest, UnknownEnumValueSuggests) {
  expectOneError(load(std::string(kMinimal) + "      client_auth: requird\n"), "7:20",
                 "listeners[0].tls.client_auth",
                 "unknown value 'requird' (did you mean 'required'?); use one of: required, "
                 "optional, none");
}

TEST_F(ConfigTest, BadValuesDoNotCascade) {
  // An unknown client_auth does not also demand client_ca; a listener that is not a map does not
  // also lack 'tls'.
  expectOneError(load(withTls("      cert: ${CERTS}/server-ec.pem\n"
                              "      key: ${CERTS}/server-ec.key\n"
                              "      client_auth: nnone\n")),
                 "6:20", "listeners[0].tls.client_auth", "(did you mean 'none'?)");
  expectOneError(load("listeners:\n  - 8883\n"), "2:5", "listeners[0]",
                 "expected a map of settings, got '8883'");
}

TEST_F(ConfigTest, MissingRequiredKeyPointsAtEnclosingMap) {
  expectOneError(load(withTls("      cert: ${CERTS}/server-ec.pem\n"
                              "      client_ca: ${CERTS}/ca-bundle.pem\n")),
                 "4:7", "listeners[0].tls.key", "missing required key 'key'");
}

TEST_F(ConfigTest, MissingTlsSection) {
  expectOneError(load("listeners:\n  - bind: 127.0.0.1\n    port: 1\n"), "2:5", "listeners[0].tls",
                 "missing required key 'tls'");
}

TEST_F(ConfigTest, ClientCaRequiredUnlessClientAuthNone) {
  expectOneError(load(withTls("      cert: ${CERTS}/server-ec.pem\n"
                              "      key: ${CERTS}/server-ec.key\n")),
                 "4:7", "listeners[0].tls.client_ca", "or set 'client_auth: none'");
}

TEST_F(ConfigTest, EmptyFileNeedsListeners) {
  expectOneError(load(""), "1:1", "listeners", "missing required key 'listeners'");
}

TEST_F(ConfigTest, NoListeners) {
  expectOneError(load("workers: 1\nlisteners: []\n"), "2:12", "listeners",
                 "no listener is defined");
}

TEST_F(ConfigTest, MissingConfigFile) {
  const LoadResult result = loadConfigFile((dir_ / "absent.yaml").string());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].rfind((dir_ / "absent.yaml").string() + ": cannot open", 0), 0u)
      << result.errors[0];
}

TEST_F(ConfigTest, MissingPemFile) {
  expectOneError(load(withTls(R"(      cert: ${CERTS}/no-such.pem
      key: ${CERTS}/server-ec.key
      client_ca: ${CERTS}/ca-bundle.pem
)")),
                 "4:13", "listeners[0].tls.cert", "cannot read file '" + cert("no-such.pem") + "'");
}

TEST_F(ConfigTest, EmptyPemFile) {
  write("empty.pem", "");
  expectOneError(load(std::string(kMinimal) + "      crl: empty.pem\n"), "7:12",
                 "listeners[0].tls.crl", "is empty");
}

TEST_F(ConfigTest, FileWithoutCertificate) {
  expectOneError(load(withTls(R"(      cert: ${CERTS}/server-ec.key
      key: ${CERTS}/server-ec.key
      client_ca: ${CERTS}/ca-bundle.pem
)")),
                 "4:13", "listeners[0].tls.cert", "holds no PEM certificate");
}

TEST_F(ConfigTest, FileWithoutKey) {
  expectOneError(load(withTls(R"(      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-ec.pem
      client_ca: ${CERTS}/ca-bundle.pem
)")),
                 "5:12", "listeners[0].tls.key", "no readable unencrypted PEM private key");
}

TEST_F(ConfigTest, FileWithoutCrl) {
  expectOneError(load(std::string(kMinimal) +
                      "      crl:\n        - ${CERTS}/crl.pem\n        - ${CERTS}/root-ca.pem\n"),
                 "9:11", "listeners[0].tls.crl[1]", "holds no PEM CRL");
}

TEST_F(ConfigTest, ClientCaWithoutCertificate) {
  expectOneError(load(withTls(R"(      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-ec.key
      client_ca: ${CERTS}/crl.pem
)")),
                 "6:18", "listeners[0].tls.client_ca", "holds no PEM certificate");
}

TEST_F(ConfigTest, KeyDoesNotMatchCertificate) {
  expectOneError(load(withTls(R"(      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-mismatch.key
      client_ca: ${CERTS}/ca-bundle.pem
)")),
                 "5:12", "listeners[0].tls.key", "private key does not match certificate");
}

TEST_F(ConfigTest, ExpiredServerCertificate) {
  expectOneError(load(withTls(R"(      cert: ${CERTS}/server-expired.pem
      key: ${CERTS}/server-expired.key
      client_ca: ${CERTS}/ca-bundle.pem
)")),
                 "4:13", "listeners[0].tls.cert", "has expired");
}

TEST_F(ConfigTest, OldTlsVersionsRefused) {
  const LoadResult result =
      load(std::string(kMinimal) + "      min_version: \"1.0\"\n      max_version: 1.1\n");
  ASSERT_EQ(result.errors.size(), 2u) << joinErrors(result);
  expectError(result.errors[0], "7:20", "listeners[0].tls.min_version",
              "TLS 1.0 is insecure and refused");
  expectError(result.errors[1], "8:20", "listeners[0].tls.max_version",
              "TLS 1.1 is insecure and refused");
}

TEST_F(ConfigTest, MinVersionAboveMaxVersion) {
  expectOneError(load(std::string(kMinimal) + "      max_version: 1.2\n      min_version: 1.3\n"),
                 "8:20", "listeners[0].tls.min_version", "min_version 1.3 is above max_version");
}

TEST_F(ConfigTest, InvalidCipherList) {
  expectOneError(load(std::string(kMinimal) + "      ciphers: NO-SUCH-CIPHER\n"), "7:16",
                 "listeners[0].tls.ciphers", "OpenSSL accepts nothing in 'NO-SUCH-CIPHER'");
}

TEST_F(ConfigTest, BindMustBeAnAddressLiteral) {
  expectOneError(load(std::string(kMinimal) + "    bind: localhost\n"), "7:11", "listeners[0].bind",
                 "'localhost' is not an IPv4 or IPv6 address");
}

TEST_F(ConfigTest, DuplicateListenerAddress) {
  const std::string tls =
      "    tls: {cert: '${CERTS}/server-ec.pem', key: '${CERTS}/server-ec.key', "
      "client_auth: none}\n";
  expectOneError(
      load("listeners:\n  - bind: ::1\n" + tls + "  - bind: 0:0::1\n    port: 8883\n" + tls),
      "5:11", "listeners[1].port",
      "address ::1 port 8883 is already used by listener 'listener-0'");
}

TEST_F(ConfigTest, DuplicateListenerName) {
  const std::string tls =
      "    tls: {cert: '${CERTS}/server-ec.pem', key: '${CERTS}/server-ec.key', "
      "client_auth: none}\n";
  expectOneError(
      load("listeners:\n  - name: a\n    port: 1\n" + tls + "  - name: a\n    port: 2\n" + tls),
      "5:11", "listeners[1].name", "listener name 'a' is already used by listeners[0]");
}

TEST_F(ConfigTest, AdminIsAReservedListenerName) {
  // "admin" is how the admin listener's TLS context appears in metrics and reload reports.
  const std::string tls =
      "    tls: {cert: '${CERTS}/server-ec.pem', key: '${CERTS}/server-ec.key', "
      "client_auth: none}\n";
  expectOneError(load("listeners:\n  - name: admin\n    port: 1\n" + tls), "2:11",
                 "listeners[0].name",
                 "'admin' names the admin listener in metrics and reloads; choose another name");
}

TEST_F(ConfigTest, UnsetVariableIsAnErrorAtItsScalar) {
  ::unsetenv("MQTLS_TEST_UNSET");
  expectOneError(load(std::string(kMinimal) + "upstream:\n  host: \"db-${MQTLS_TEST_UNSET}\"\n"),
                 "8:9", "upstream.host", "environment variable 'MQTLS_TEST_UNSET' is not set");
}

TEST_F(ConfigTest, IdentityErrors) {
  const LoadResult result = load(std::string(kMinimal) + R"(identity:
  username_from: [cn, spife_id, cn]
  user_properties:
    cn: x-id
    sn: x-sn
    dn: x-id
    serial: ""
)");
  ASSERT_EQ(result.errors.size(), 5u) << joinErrors(result);
  expectError(result.errors[0], "8:23", "identity.username_from[1]",
              "unknown value 'spife_id' (did you mean 'spiffe_id'?)");
  expectError(result.errors[1], "8:33", "identity.username_from[2]", "'cn' is listed twice");
  expectError(result.errors[2], "11:5", "identity.user_properties.sn",
              "unknown certificate field 'sn' (did you mean 'cn'?)");
  expectError(result.errors[3], "12:9", "identity.user_properties.dn",
              "property name 'x-id' is already used for 'cn'");
  expectError(result.errors[4], "13:13", "identity.user_properties.serial",
              "must be 1 to 255 bytes long");
}

TEST_F(ConfigTest, EmptyClientIdSeparator) {
  expectOneError(load(std::string(kMinimal) + "identity:\n  client_id_separator: \"\"\n"), "8:24",
                 "identity.client_id_separator", "empty separator");
}

TEST_F(ConfigTest, MetricsListenAddress) {
  expectOneError(load(std::string(kMinimal) + "metrics:\n  listen: ::1:9090\n"), "8:11",
                 "metrics.listen", "an IPv6 address needs brackets");
}

TEST_F(ConfigTest, YamlSyntaxErrorHasItsPosition) {
  expectOneError(load("workers: 1\nlog:\n  level: info\n   format: text\n"), "4:10", "",
                 "YAML syntax error: illegal map value");
}

TEST_F(ConfigTest, SecondDocumentRefused) {
  expectOneError(load(std::string(kMinimal) + "---\nworkers: 1\n"), "8:1", "",
                 "a second YAML document");
}

TEST_F(ConfigTest, AllErrorsReportedTogetherInFileOrder) {
  const LoadResult result = load(R"(workers: many
listeners:
  - port: 0
    tls:
      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-mismatch.key
      client_ca: ${CERTS}/ca-bundle.pem
)");
  ASSERT_EQ(result.errors.size(), 3u) << joinErrors(result);
  expectError(result.errors[0], "1:10", "workers", "invalid worker count 'many'");
  expectError(result.errors[1], "3:11", "listeners[0].port", "out of range");
  expectError(result.errors[2], "6:12", "listeners[0].tls.key", "does not match");
}

TEST_F(ConfigTest, MalformedInputNeverThrows) {
  for (const char* text : {"[", "{{{", "- - -\n  : :", "listeners: !!binary x\n", "\t\tkey: 1",
                           "listeners: *alias\n", "\xff\xfe\x00\x01", "key: 'unterminated"}) {
    LoadResult result;
    EXPECT_NO_THROW(result = loadConfigText(text, "bad.yaml")) << text;
    EXPECT_FALSE(result.ok()) << text;
    EXPECT_FALSE(result.errors.empty()) << text;
  }
}

}  // namespace
}  // namespace mqtls::config::testing

// Loading valid configurations: every key reaches the model, defaults apply, env expansion and
// relative paths work, and the shipped example files load.
#include <algorithm>
#include <thread>

#include "config/loader.h"
#include "config_test_support.h"

namespace mqtls::config::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST_F(ConfigTest, FullConfigLoadsEveryKey) {
  const Config config = loadOk(R"(workers: 3
worker_scheduling: normal
log: {level: debug, format: json}
metrics:
  listen: "[::1]:9100"
listeners:
  - name: public
    bind: "::"
    port: 8884
    tls:
      cert: ${CERTS}/server-rsa.pem
      key: ${CERTS}/server-rsa.key
      client_ca: ${CERTS}/root-ca.pem
      client_auth: optional
      verify_depth: 2
      crl: ["${CERTS}/crl.pem", "${CERTS}/crl-chain.pem"]
      crl_check: chain
      min_version: 1.3
      max_version: "1.3"
      ciphers: ECDHE+AESGCM
      ciphersuites: TLS_AES_256_GCM_SHA384
      groups: X25519:P-256
      alpn: [mqtt, x-mqtt]
      session_cache_size: 0
      session_timeout: 90s
  - bind: 127.0.0.1
    tls: {cert: "${CERTS}/server-ec.pem", key: "${CERTS}/server-ec.key", client_auth: none}
upstream: {host: broker.local, port: 1884, unix_socket: run/mosquitto.sock, connect_timeout: 250ms}
limits:
  handshake_timeout: 3s
  connect_timeout: 1m
  max_connect_size: 1MiB
  max_connections: 42
  buffer_limit: 4096
  drain_timeout: 1h
identity:
  username_from: [spiffe_id, san_dns, cn]
  username: if_empty
  password: strip
  client_id: prefix
  client_id_separator: "/"
  user_properties:
    fingerprint_sha256: x-cert-fingerprint
    cn: x-cert-cn
  anonymous: refuse
)");
  EXPECT_EQ(config.source_path, path_);
  EXPECT_EQ(config.workers, 3);
  EXPECT_EQ(config.worker_scheduling, WorkerScheduling::Normal);
  EXPECT_EQ(config.log.level, "debug");
  EXPECT_EQ(config.log.format, LogFormat::Json);
  EXPECT_EQ(config.metrics.listen, "[::1]:9100");
  ASSERT_EQ(config.listeners.size(), 2u);
  const Listener& first = config.listeners[0];
  EXPECT_EQ(first.name, "public");
  EXPECT_EQ(first.bind_address, "::");
  EXPECT_EQ(first.port, 8884);
  EXPECT_EQ(first.tls.cert_file, cert("server-rsa.pem"));
  EXPECT_EQ(first.tls.key_file, cert("server-rsa.key"));
  EXPECT_EQ(first.tls.client_ca_file, cert("root-ca.pem"));
  EXPECT_EQ(first.tls.client_auth, ClientAuth::Optional);
  EXPECT_EQ(first.tls.verify_depth, 2);
  EXPECT_EQ(first.tls.crl_files,
            (std::vector<std::string>{cert("crl.pem"), cert("crl-chain.pem")}));
  EXPECT_EQ(first.tls.crl_check, CrlCheck::Chain);
  EXPECT_EQ(first.tls.min_version, TlsVersion::Tls13);
  EXPECT_EQ(first.tls.max_version, TlsVersion::Tls13);
  EXPECT_EQ(first.tls.ciphers, "ECDHE+AESGCM");
  EXPECT_EQ(first.tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(first.tls.groups, "X25519:P-256");
  EXPECT_EQ(first.tls.alpn, (std::vector<std::string>{"mqtt", "x-mqtt"}));
  EXPECT_EQ(first.tls.session_cache_size, 0u);
  EXPECT_EQ(first.tls.session_timeout, seconds(90));
  const Listener& second = config.listeners[1];
  EXPECT_EQ(second.name, "listener-1");
  EXPECT_EQ(second.bind_address, "127.0.0.1");
  EXPECT_EQ(second.port, 8883);
  EXPECT_EQ(second.tls.client_auth, ClientAuth::None);
  EXPECT_EQ(second.tls.client_ca_file, "");
  EXPECT_EQ(config.upstream.host, "broker.local");
  EXPECT_EQ(config.upstream.port, 1884);
  EXPECT_EQ(config.upstream.unix_socket, (dir_ / "run/mosquitto.sock").string());
  EXPECT_EQ(config.upstream.connect_timeout, milliseconds(250));
  EXPECT_EQ(config.limits.handshake_timeout, seconds(3));
  EXPECT_EQ(config.limits.connect_timeout, minutes(1));
  EXPECT_EQ(config.limits.max_connect_size, 1024u * 1024u);
  EXPECT_EQ(config.limits.max_connections, 42u);
  EXPECT_EQ(config.limits.buffer_limit, 4096u);
  EXPECT_EQ(config.limits.drain_timeout, std::chrono::hours(1));
  EXPECT_EQ(config.identity.username_from,
            (std::vector<IdentitySource>{IdentitySource::SpiffeId, IdentitySource::SanDns,
                                         IdentitySource::Cn}));
  EXPECT_EQ(config.identity.username, UsernamePolicy::IfEmpty);
  EXPECT_EQ(config.identity.password, PasswordPolicy::Strip);
  EXPECT_EQ(config.identity.client_id, ClientIdPolicy::Prefix);
  EXPECT_EQ(config.identity.client_id_separator, "/");
  using Property = std::pair<IdentitySource, std::string>;
  EXPECT_EQ(config.identity.user_properties,
            (std::vector<Property>{{IdentitySource::FingerprintSha256, "x-cert-fingerprint"},
                                   {IdentitySource::Cn, "x-cert-cn"}}));
  EXPECT_EQ(config.identity.anonymous, AnonymousPolicy::Refuse);
}

// Everything not in the minimal file equals the model's defaults.
void expectDefaults(const Config& config) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(config.workers, std::clamp(cores, 1, 256));
  EXPECT_EQ(config.worker_scheduling, WorkerScheduling::Batch);
  const Config defaults;
  const TlsSettings tls_defaults;
  ASSERT_EQ(config.listeners.size(), 1u);
  const TlsSettings& tls = config.listeners[0].tls;
  EXPECT_EQ(tls.client_auth, tls_defaults.client_auth);
  EXPECT_EQ(tls.verify_depth, tls_defaults.verify_depth);
  EXPECT_EQ(tls.crl_files, tls_defaults.crl_files);
  EXPECT_EQ(tls.crl_check, tls_defaults.crl_check);
  EXPECT_EQ(tls.min_version, tls_defaults.min_version);
  EXPECT_EQ(tls.max_version, tls_defaults.max_version);
  EXPECT_EQ(tls.ciphers, tls_defaults.ciphers);
  EXPECT_EQ(tls.ciphersuites, tls_defaults.ciphersuites);
  EXPECT_EQ(tls.groups, tls_defaults.groups);
  EXPECT_EQ(tls.alpn, tls_defaults.alpn);
  EXPECT_EQ(tls.session_cache_size, tls_defaults.session_cache_size);
  EXPECT_EQ(tls.session_timeout, tls_defaults.session_timeout);
  EXPECT_EQ(config.upstream.port, defaults.upstream.port);
  EXPECT_EQ(config.upstream.unix_socket, defaults.upstream.unix_socket);
  EXPECT_EQ(config.upstream.connect_timeout, defaults.upstream.connect_timeout);
  EXPECT_EQ(config.limits.handshake_timeout, defaults.limits.handshake_timeout);
  EXPECT_EQ(config.limits.connect_timeout, defaults.limits.connect_timeout);
  EXPECT_EQ(config.limits.max_connect_size, defaults.limits.max_connect_size);
  EXPECT_EQ(config.limits.max_connections, defaults.limits.max_connections);
  EXPECT_EQ(config.limits.buffer_limit, defaults.limits.buffer_limit);
  EXPECT_EQ(config.limits.drain_timeout, defaults.limits.drain_timeout);
  EXPECT_EQ(config.identity.username_from, defaults.identity.username_from);
  EXPECT_EQ(config.identity.username, defaults.identity.username);
  EXPECT_EQ(config.identity.password, defaults.identity.password);
  EXPECT_EQ(config.identity.client_id, defaults.identity.client_id);
  EXPECT_EQ(config.identity.client_id_separator, defaults.identity.client_id_separator);
  EXPECT_EQ(config.identity.user_properties, defaults.identity.user_properties);
  EXPECT_EQ(config.identity.anonymous, defaults.identity.anonymous);
  EXPECT_EQ(config.log.level, defaults.log.level);
  EXPECT_EQ(config.log.format, defaults.log.format);
  EXPECT_EQ(config.metrics.listen, defaults.metrics.listen);
}

TEST_F(ConfigTest, MinimalConfigTakesModelDefaults) {
  const Config config = loadOk(kMinimal);
  expectDefaults(config);
  EXPECT_EQ(config.listeners[0].name, "listener-0");
  EXPECT_EQ(config.listeners[0].bind_address, Listener{}.bind_address);
  EXPECT_EQ(config.upstream.host, Upstream{}.host);
}

TEST_F(ConfigTest, NullValuesTakeDefaults) {
  const Config config = loadOk(std::string(kMinimal) + "log:\nlimits:\n  drain_timeout: ~\n");
  EXPECT_EQ(config.limits.drain_timeout, Limits{}.drain_timeout);
}

TEST_F(ConfigTest, EnvironmentExpansionInValues) {
  ::setenv("MQTLS_TEST_PORT", "9999", 1);
  ::setenv("MQTLS_TEST_EMPTY", "", 1);
  ::unsetenv("MQTLS_TEST_UNSET");
  const Config config = loadOk(std::string(kMinimal) + R"(upstream:
  host: ${MQTLS_TEST_UNSET:-broker}.${MQTLS_TEST_EMPTY:-lan}
  port: ${MQTLS_TEST_PORT}
  connect_timeout: ${MQTLS_TEST_UNSET:-2}s
identity:
  client_id_separator: "$x${MQTLS_TEST_EMPTY}$"
)");
  EXPECT_EQ(config.upstream.host, "broker.lan");
  EXPECT_EQ(config.upstream.port, 9999);
  EXPECT_EQ(config.upstream.connect_timeout, seconds(2));
  EXPECT_EQ(config.identity.client_id_separator, "$x$");
  EXPECT_EQ(config.listeners[0].tls.cert_file, cert("server-ec.pem"));
}

TEST_F(ConfigTest, RelativePathsResolveAgainstConfigDirectory) {
  for (const char* file : {"server-ec.pem", "server-ec.key", "ca-bundle.pem", "crl.pem"}) {
    fs::create_directories(dir_ / "pki");
    fs::copy_file(cert(file), dir_ / "pki" / file);
  }
  const std::string path = write("etc/mqtls.yaml", R"(listeners:
  - tls:
      cert: ../pki/server-ec.pem
      key: ../pki/server-ec.key
      client_ca: ../pki/ca-bundle.pem
      crl: ../pki/crl.pem
)");
  const LoadResult result = loadConfigFile(path);
  ASSERT_TRUE(result.ok()) << joinErrors(result);
  const TlsSettings& tls = result.config->listeners[0].tls;
  EXPECT_EQ(fs::path(tls.cert_file), dir_ / "etc" / "../pki/server-ec.pem");
  EXPECT_TRUE(fs::path(tls.key_file).is_absolute());
  EXPECT_EQ(fs::path(tls.client_ca_file), dir_ / "etc" / "../pki/ca-bundle.pem");
  EXPECT_EQ(tls.crl_files, std::vector<std::string>{(dir_ / "etc" / "../pki/crl.pem").string()});
}

TEST_F(ConfigTest, LoadConfigTextUsesSourceNameAndBaseDir) {
  fs::copy_file(cert("server-ec.pem"), dir_ / "s.pem");
  fs::copy_file(cert("server-ec.key"), dir_ / "s.key");
  const std::string text = "listeners:\n  - tls: {cert: s.pem, key: s.key, client_auth: none}\n";
  const LoadResult ok = loadConfigText(text, "inline.yaml", dir_.string());
  ASSERT_TRUE(ok.ok()) << joinErrors(ok);
  EXPECT_EQ(ok.config->source_path, "inline.yaml");
  EXPECT_EQ(ok.config->listeners[0].tls.cert_file, (dir_ / "s.pem").string());
  const LoadResult bad = loadConfigText(text + "workers: none\n", "inline.yaml", dir_.string());
  ASSERT_EQ(bad.errors.size(), 1u) << joinErrors(bad);
  EXPECT_EQ(bad.errors[0].rfind("inline.yaml:3:10: workers: ", 0), 0u) << bad.errors[0];
}

TEST_F(ConfigTest, ClientCaIsIgnoredWhenClientAuthIsNone) {
  const Config config = loadOk(R"(listeners:
  - tls:
      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-ec.key
      client_auth: none
      client_ca: does-not-exist.pem
)");
  EXPECT_EQ(config.listeners[0].tls.client_auth, ClientAuth::None);
  EXPECT_EQ(config.listeners[0].tls.client_ca_file, "");
}

TEST_F(ConfigTest, AdminTlsRequiresClientCertificatesExactlyWhenAClientCaIsGiven) {
  const std::string admin =
      "admin:\n  listen: 127.0.0.1:9100\n  tls:\n"
      "    cert: ${CERTS}/server-ec.pem\n    key: ${CERTS}/server-ec.key\n";
  const Config plain = loadOk(std::string(kMinimal) + admin);
  ASSERT_TRUE(plain.admin.tls.has_value());
  EXPECT_EQ(plain.admin.tls->client_auth, ClientAuth::None);
  EXPECT_TRUE(plain.admin.tls->client_ca_file.empty());
  const Config verified =
      loadOk(std::string(kMinimal) + admin + "    client_ca: ${CERTS}/ca-bundle.pem\n");
  EXPECT_EQ(verified.admin.tls->client_auth, ClientAuth::Required);
  EXPECT_EQ(verified.admin.tls->client_ca_file, cert("ca-bundle.pem"));
  EXPECT_FALSE(loadOk(kMinimal).admin.tls.has_value());
}

TEST_F(ConfigTest, ValueFormsAccepted) {
  const Config config = loadOk(std::string(kMinimal) + R"(      crl: ${CERTS}/crl.pem
      min_version: "1.2"
      max_version: 1.2
      session_timeout: 30
workers: auto
limits:
  handshake_timeout: 500ms
  max_connect_size: 65536
  buffer_limit: 1KiB
identity:
  username_from: san_uri
)");
  const TlsSettings& tls = config.listeners[0].tls;
  EXPECT_EQ(tls.crl_files, std::vector<std::string>{cert("crl.pem")});
  EXPECT_EQ(tls.max_version, TlsVersion::Tls12);
  EXPECT_EQ(tls.session_timeout, seconds(30));
  EXPECT_GE(config.workers, 1);
  EXPECT_EQ(config.limits.handshake_timeout, milliseconds(500));
  EXPECT_EQ(config.limits.max_connect_size, 65536u);
  EXPECT_EQ(config.limits.buffer_limit, 1024u);
  EXPECT_EQ(config.identity.username_from, std::vector<IdentitySource>{IdentitySource::SanUri});
}

class ShippedConfigTest : public ConfigTest {
 protected:
  void SetUp() override {
    ConfigTest::SetUp();
    ::setenv("MQTLS_CERTS", MQTLS_CERTS_DIR, 1);
  }
  void TearDown() override {
    ::unsetenv("MQTLS_CERTS");
    ConfigTest::TearDown();
  }
};

TEST_F(ShippedConfigTest, ExampleLoadsAndShowsTheDefaults) {
  const LoadResult result = loadConfigFile(MQTLS_SOURCE_DIR "/config/mqtls.example.yaml");
  ASSERT_TRUE(result.ok()) << joinErrors(result);
  expectDefaults(*result.config);
  const Listener& listener = result.config->listeners[0];
  EXPECT_EQ(listener.bind_address, Listener{}.bind_address);
  EXPECT_EQ(listener.port, Listener{}.port);
  EXPECT_EQ(listener.tls.cert_file, cert("server-ec.pem"));
  EXPECT_EQ(result.config->upstream.host, Upstream{}.host);
}

TEST_F(ShippedConfigTest, MinimalLoads) {
  const LoadResult result = loadConfigFile(MQTLS_SOURCE_DIR "/config/minimal.yaml");
  ASSERT_TRUE(result.ok()) << joinErrors(result);
  const Listener& listener = result.config->listeners[0];
  EXPECT_EQ(listener.bind_address, "127.0.0.1");
  EXPECT_EQ(listener.port, 8883);
  EXPECT_EQ(listener.tls.client_ca_file, cert("ca-bundle.pem"));
  EXPECT_EQ(result.config->upstream.port, 1883);
}

TEST_F(ShippedConfigTest, MinimalDefaultCertDirIsRelativeToConfigDir) {
  // The shipped file in a copy of the source layout: config/ beside certs/out/.
  ::unsetenv("MQTLS_CERTS");
  fs::create_directories(dir_ / "config");
  fs::create_directories(dir_ / "certs" / "out");
  fs::copy_file(MQTLS_SOURCE_DIR "/config/minimal.yaml", dir_ / "config" / "minimal.yaml");
  for (const char* file : {"server-ec.pem", "server-ec.key", "ca-bundle.pem"}) {
    fs::copy_file(cert(file), dir_ / "certs" / "out" / file);
  }
  const startup::CheckedConfig checked =
      startup::checkConfigFile((dir_ / "config" / "minimal.yaml").string());
  ASSERT_TRUE(checked.loaded.ok()) << joinErrors(checked.loaded);
  EXPECT_EQ(fs::path(checked.loaded.config->listeners[0].tls.cert_file),
            dir_ / "config" / "../certs/out/server-ec.pem");
  EXPECT_EQ(checked.contexts.size(), 1u);
}

}  // namespace
}  // namespace mqtls::config::testing

// The admin listener over a real evhttp socket, with a scripted AdminActions, asked by a raw
// HTTP/1.0 client; the broker check against a real listening socket; the admin configuration.
#include "ops/admin_server.h"

#include <arpa/inet.h>
#include <event2/thread.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "../config/config_test_support.h"
#include "ops/admin_log.h"

namespace mqtls::ops {
namespace {

using namespace std::chrono_literals;

class FakeActions final : public AdminActions {
 public:
  std::string notReadyReason() override {
    std::lock_guard lock(mutex);
    return not_ready;
  }
  std::vector<WorkerHeartbeat> heartbeats() override {
    std::lock_guard lock(mutex);
    return beats;
  }
  ReloadReport reload() override {
    ++reloads;
    std::lock_guard lock(mutex);
    return reload_report;
  }
  ConnectionList connections(std::size_t limit, std::chrono::milliseconds) override {
    std::lock_guard lock(mutex);
    ConnectionList list;
    list.total = open.size();
    for (std::size_t i = 0; i < open.size() && i < limit; ++i) {
      list.connections.push_back(open[i]);
    }
    return list;
  }
  CloseOutcome closeConnections(const ConnectionFilter& filter,
                                std::chrono::milliseconds) override {
    std::lock_guard lock(mutex);
    filters.push_back(filter);
    CloseOutcome outcome;
    for (const auto& c : open) {
      outcome.closed += filter.matches(c.id, c.identity) ? 1 : 0;
    }
    return outcome;
  }

  std::mutex mutex;
  std::string not_ready;
  std::vector<WorkerHeartbeat> beats{{0, true, 0.2}, {1, true, 0.5}};
  ReloadReport reload_report;
  std::vector<ConnectionInfo> open;
  std::vector<ConnectionFilter> filters;
  std::atomic<int> reloads{0};
};

// A TCP listener on a free loopback port standing in for the broker.
class FakeBroker {
 public:
  FakeBroker() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd_, 64) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen: " << std::strerror(errno);
    }
    port_ = ntohs(addr.sin_port);
  }
  ~FakeBroker() { stop(); }
  void stop() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

struct HttpAnswer {
  int code = 0;
  std::string head;
  std::string body;
};

// One HTTP/1.0 exchange over a fresh connection (the server closes it after the answer).
HttpAnswer http(std::uint16_t port, const std::string& method, const std::string& target,
                const std::string& body = "", const char* host = "127.0.0.1") {
  const bool v6 = std::string(host).find(':') != std::string::npos;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  sockaddr_storage storage{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, host, &a->sin_addr);
    len = sizeof *a;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  HttpAnswer answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), len) != 0) {
    ::close(fd);
    ADD_FAILURE() << "cannot connect to the admin port: " << std::strerror(errno);
    return answer;
  }
  const std::string request = method + " " + target +
                              " HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\n\r\n" + body;
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string raw;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) {
    raw.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto split = raw.find("\r\n\r\n");
  EXPECT_NE(split, std::string::npos) << "no complete answer: " << raw;
  if (split == std::string::npos || raw.size() < 12) {
    return answer;
  }
  answer.code = std::stoi(raw.substr(9, 3));
  answer.head = raw.substr(0, split);
  answer.body = raw.substr(split + 4);
  return answer;
}

class AdminTest : public ::testing::Test {
 protected:
  // As main() does before any loop exists: the admin loop is woken and stopped from other
  // threads (the helper thread's results, stop()), which libevent allows only with locking on.
  AdminTest() { evthread_use_pthreads(); }
  void start(bool allow_mutations = true, const std::string& listen = "127.0.0.1:0") {
    AdminServer::Settings settings;
    settings.listen = listen;
    settings.allow_mutations = allow_mutations;
    settings.upstream.host = "127.0.0.1";
    settings.upstream.port = broker_.port();
    settings.probe_interval = 100ms;
    settings.readiness_watch = 5s;
    settings.heartbeat_stale = 3s;
    auto server = AdminServer::start(settings, metrics_, actions_);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(server.value());
  }
  HttpAnswer get(const std::string& target) { return http(server_->port(), "GET", target); }

  FakeBroker broker_;
  Metrics metrics_;
  FakeActions actions_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminTest, HealthzNamesAWorkerWhoseLoopStalled) {
  start();
  EXPECT_EQ(get("/healthz").code, 200);
  {
    std::lock_guard lock(actions_.mutex);
    actions_.beats[1].seconds_since_beat = 7.5;
    actions_.beats.push_back({2, false, 60});  // drained and ended: not a stall
  }
  auto answer = get("/healthz");
  EXPECT_EQ(answer.code, 503);
  EXPECT_EQ(answer.body, "worker 1: event loop stalled for 7 s\n");
}

TEST_F(AdminTest, ReadyzFollowsTheBrokerAndTheServer) {
  start();
  auto ready = get("/readyz");  // the first answer waits for the first check
  EXPECT_EQ(ready.code, 200) << ready.body;
  EXPECT_EQ(ready.body, "ready\n");
  EXPECT_NE(get("/metrics").body.find("mqtls_upstream_ready 1"), std::string::npos);

  {
    std::lock_guard lock(actions_.mutex);
    actions_.not_ready = "draining";
  }
  auto draining = get("/readyz");
  EXPECT_EQ(draining.code, 503);
  EXPECT_EQ(draining.body, "draining\n");
  {
    std::lock_guard lock(actions_.mutex);
    actions_.not_ready.clear();
  }

  broker_.stop();
  HttpAnswer down;
  for (int i = 0; i < 100 && down.code != 503; ++i) {
    std::this_thread::sleep_for(50ms);
    down = get("/readyz");
  }
  EXPECT_EQ(down.code, 503);
  EXPECT_NE(down.body.find("does not answer"), std::string::npos) << down.body;
  EXPECT_NE(down.body.find("refused"), std::string::npos) << down.body;
  EXPECT_NE(get("/metrics").body.find("mqtls_upstream_ready 0"), std::string::npos);
}

TEST_F(AdminTest, MetricsAreTheRegistryInTextFormat) {
  start();
  metrics_.connectionAccepted("edge");
  auto answer = get("/metrics");
  EXPECT_EQ(answer.code, 200);
  EXPECT_NE(answer.head.find("text/plain; version=0.0.4"), std::string::npos) << answer.head;
  EXPECT_NE(answer.body.find("# TYPE mqtls_connections_accepted_total counter"), std::string::npos);
  EXPECT_NE(answer.body.find("mqtls_connections_accepted_total{listener=\"edge\"} 1"),
            std::string::npos)
      << answer.body;
}

TEST_F(AdminTest, ReloadAnswersTheResultAsJson) {
  start();
  actions_.reload_report.listeners.push_back({"edge", "reloaded", true, {"/c/a.pem"}, {}, {}});
  auto ok = http(server_->port(), "POST", "/reload");
  EXPECT_EQ(ok.code, 200);
  EXPECT_NE(ok.head.find("application/json"), std::string::npos);
  EXPECT_EQ(ok.body,
            "{\"ok\":true,\"errors\":[],\"warnings\":[],\"listeners\":[{\"listener\":\"edge\","
            "\"ok\":true,\"outcome\":\"reloaded\",\"files\":[\"/c/a.pem\"],\"error\":\"\","
            "\"errors\":[],\"warnings\":[]}]}\n");

  actions_.reload_report.ok = false;
  actions_.reload_report.listeners[0] = {
      "edge", "failed", false, {"/c/a.pem"}, {"tls.key: \"bad\" key"}, {}};
  auto failed = http(server_->port(), "POST", "/reload");
  EXPECT_EQ(failed.code, 500);
  EXPECT_NE(failed.body.find("\"error\":\"tls.key: \\\"bad\\\" key\""), std::string::npos)
      << failed.body;
  EXPECT_EQ(actions_.reloads.load(), 2);
}

TEST_F(AdminTest, ConnectionsAreListedAndClosed) {
  start();
  {
    std::lock_guard lock(actions_.mutex);
    for (std::uint64_t id : {3, 7}) {
      ConnectionInfo info;
      info.id = id;
      info.listener = "edge";
      info.peer = "127.0.0.1:5000";
      info.identity = id == 7 ? "dev 1" : "dev-2";
      info.client_id = "c\"" + std::to_string(id);
      info.tls_version = "TLSv1.3";
      info.mqtt_level = 5;
      info.age_seconds = 1.5;
      actions_.open.push_back(info);
    }
  }
  auto list = get("/connections?limit=1");
  EXPECT_EQ(list.code, 200);
  EXPECT_NE(list.body.find("{\"total\":2,\"connections\":[{\"id\":3,"), std::string::npos)
      << list.body;
  EXPECT_NE(list.body.find("\"client_id\":\"c\\\"3\""), std::string::npos) << list.body;
  EXPECT_EQ(list.body.find("\"id\":7"), std::string::npos) << "the limit is applied";
  EXPECT_EQ(get("/connections?limit=zero").code, 400);

  EXPECT_EQ(http(server_->port(), "DELETE", "/connections/7").code, 200);
  EXPECT_EQ(http(server_->port(), "DELETE", "/connections/99").code, 404);
  EXPECT_EQ(http(server_->port(), "DELETE", "/connections/x7").code, 400);
  EXPECT_EQ(http(server_->port(), "DELETE", "/connections").code, 400);
  auto by_identity = http(server_->port(), "DELETE", "/connections?identity=dev%201");
  EXPECT_EQ(by_identity.code, 200);
  EXPECT_EQ(by_identity.body, "{\"closed\":1,\"unanswered_workers\":[]}\n");
  std::lock_guard lock(actions_.mutex);
  ASSERT_EQ(actions_.filters.size(), 3u);
  EXPECT_EQ(actions_.filters[0].id, 7u);
  EXPECT_EQ(actions_.filters[2].identity, "dev 1");
}

TEST_F(AdminTest, LogLevelChangesAtRunTime) {
  start();
  ASSERT_TRUE(setLogLevel("info"));
  EXPECT_EQ(http(server_->port(), "PUT", "/log/level", "debug\n").code, 200);
  EXPECT_EQ(spdlog::default_logger_raw()->level(), spdlog::level::debug);
  auto json = http(server_->port(), "PUT", "/log/level", R"({ "level" : "trace" })");
  EXPECT_EQ(json.body, "{\"level\":\"trace\"}\n");
  EXPECT_EQ(logLevel(), "trace");
  EXPECT_EQ(http(server_->port(), "PUT", "/log/level", "loud").code, 400);
  EXPECT_EQ(logLevel(), "trace");
  EXPECT_EQ(cycleLogLevel(), "info");
  EXPECT_EQ(cycleLogLevel(), "debug");
  EXPECT_EQ(cycleLogLevel(), "trace");
  EXPECT_EQ(cycleLogLevel(), "info");
}

TEST_F(AdminTest, MutationsCanBeRefused) {
  start(/*allow_mutations=*/false);
  EXPECT_EQ(http(server_->port(), "POST", "/reload").code, 403);
  EXPECT_EQ(http(server_->port(), "DELETE", "/connections/1").code, 403);
  EXPECT_EQ(http(server_->port(), "PUT", "/log/level", "debug").code, 403);
  EXPECT_EQ(actions_.reloads.load(), 0);
  EXPECT_EQ(get("/healthz").code, 200);
  EXPECT_EQ(get("/log/level").code, 200);
}

TEST_F(AdminTest, UnknownPathsAndMethods) {
  start();
  EXPECT_EQ(get("/nope").code, 404);
  auto wrong = get("/reload");
  EXPECT_EQ(wrong.code, 405);
  EXPECT_NE(wrong.head.find("Allow: POST"), std::string::npos) << wrong.head;
}

TEST_F(AdminTest, ABusyPortIsAClearError) {
  start();
  AdminServer::Settings settings;
  settings.listen = "127.0.0.1:" + std::to_string(server_->port());
  auto second = AdminServer::start(settings, metrics_, actions_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("cannot listen"), std::string::npos)
      << second.error().message;
}

TEST_F(AdminTest, ServesIpv6Loopback) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool v6 = probe >= 0 && bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (probe >= 0) {
    ::close(probe);
  }
  if (!v6) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  start(true, "[::1]:0");
  EXPECT_EQ(http(server_->port(), "GET", "/healthz", "", "::1").code, 200);
}

TEST(AdminAddress, SplitsAndClassifies) {
  auto v6 = splitListenAddress("[::1]:9100");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 9100);
  EXPECT_FALSE(splitListenAddress("9100").ok());
  EXPECT_TRUE(isLoopbackHost("127.0.0.2"));
  EXPECT_TRUE(isLoopbackHost("::1"));
  EXPECT_FALSE(isLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(isLoopbackHost("10.1.2.3"));
  EXPECT_EQ(parseLevelBody(" warn "), "warn");
  EXPECT_EQ(parseLevelBody(R"({"level":"off"})"), "off");
  EXPECT_FALSE(parseLevelBody(R"({"level":"off","x":1})"));
  EXPECT_FALSE(parseLevelBody("verbose"));
}

}  // namespace
}  // namespace mqtls::ops

namespace mqtls::config::testing {
namespace {

const std::string kListeners =
    "listeners:\n"
    "  - port: 8883\n"
    "    tls:\n"
    "      cert: ${CERTS}/server-ec.pem\n"
    "      key: ${CERTS}/server-ec.key\n"
    "      client_ca: ${CERTS}/ca-bundle.pem\n";

TEST_F(ConfigTest, AdminSectionIsRead) {
  Config config =
      loadOk("admin:\n  listen: \"[::1]:9100\"\n  allow_mutations: false\n" + kListeners);
  EXPECT_EQ(config.admin.listen, "[::1]:9100");
  EXPECT_FALSE(config.admin.allow_mutations);
  Config defaults = loadOk(kListeners);
  EXPECT_EQ(defaults.admin.listen, "");
  EXPECT_TRUE(defaults.admin.allow_mutations);
}

TEST_F(ConfigTest, MetricsListenIsTheAdminAddressWhenAdminHasNone) {
  Config config = loadOk("metrics:\n  listen: 127.0.0.1:9090\n" + kListeners);
  EXPECT_EQ(config.admin.listen, "127.0.0.1:9090");
  Config same =
      loadOk("metrics: {listen: 127.0.0.1:9090}\nadmin: {listen: 127.0.0.1:9090}\n" + kListeners);
  EXPECT_EQ(same.admin.listen, "127.0.0.1:9090");
  expectOneError(
      load("metrics: {listen: 127.0.0.1:9090}\nadmin: {listen: 127.0.0.1:9100}\n" + kListeners),
      "2:17", "admin.listen", "differs from metrics.listen");
}

TEST_F(ConfigTest, AdminTlsProblemsAndBadAddressesAreRefused) {
  const LoadResult sni = load(
      "admin:\n  listen: 127.0.0.1:9100\n  tls:\n    cert: ${CERTS}/server-ec.pem\n"
      "    sni: []\n" +
      kListeners);
  EXPECT_FALSE(sni.ok());
  const auto named = [&](const std::string& key) {
    return std::count_if(sni.errors.begin(), sni.errors.end(), [&](const std::string& e) {
      return e.find(": " + key + ": ") != std::string::npos;
    });
  };
  EXPECT_EQ(named("admin.tls.sni"), 1) << joinErrors(sni);
  EXPECT_EQ(named("admin.tls.key"), 1) << joinErrors(sni);  // a listener's tls rules apply
  const LoadResult optional = load(
      "admin:\n  listen: 127.0.0.1:9100\n  tls:\n    cert: ${CERTS}/server-ec.pem\n"
      "    key: ${CERTS}/server-ec.key\n    client_ca: ${CERTS}/ca-bundle.pem\n"
      "    client_auth: optional\n" +
      kListeners);
  expectOneError(optional, "7:18", "admin.tls.client_auth", "use required");
  expectOneError(load("admin:\n  tls:\n    cert: ${CERTS}/server-ec.pem\n"
                      "    key: ${CERTS}/server-ec.key\n" +
                      kListeners),
                 "3:5", "admin.tls", "admin listener is off");
  expectOneError(load("admin:\n  listen: ::1:9100\n" + kListeners), "2:11", "admin.listen",
                 "needs brackets");
  expectOneError(load("admin:\n  allow_mutations: maybe\n" + kListeners), "2:20",
                 "admin.allow_mutations", "maybe");
}

}  // namespace
}  // namespace mqtls::config::testing

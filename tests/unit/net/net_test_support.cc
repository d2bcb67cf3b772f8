#include "net/net_test_support.h"

#include <prometheus/metric_family.h>

#include <csignal>
#include <filesystem>

namespace mqtls::net::testing {
namespace {

void putString(std::vector<std::uint8_t>& out, const std::string& text) {
  out.push_back(static_cast<std::uint8_t>(text.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(text.size() & 0xFF));
  out.insert(out.end(), text.begin(), text.end());
}

void putVarint(std::vector<std::uint8_t>& out, std::size_t value) {
  do {
    std::uint8_t byte = value & 0x7F;
    value >>= 7;
    out.push_back(static_cast<std::uint8_t>(byte | (value != 0 ? 0x80 : 0)));
  } while (value != 0);
}

std::vector<std::uint8_t> withHeader(std::uint8_t first, const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> out{first};
  putVarint(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

std::vector<std::uint8_t> connectV311(const std::string& client_id, const std::string& username) {
  std::vector<std::uint8_t> body;
  putString(body, "MQTT");
  body.push_back(4);
  body.push_back(static_cast<std::uint8_t>(0x02 | (username.empty() ? 0 : 0x80)));
  body.push_back(0);
  body.push_back(60);
  putString(body, client_id);
  if (!username.empty()) {
    putString(body, username);
  }
  return withHeader(0x10, body);
}

std::vector<std::uint8_t> connectV5(const std::string& client_id) {
  std::vector<std::uint8_t> body;
  putString(body, "MQTT");
  body.push_back(5);
  body.push_back(0x02);
  body.push_back(0);
  body.push_back(60);
  body.push_back(0);  // no properties
  putString(body, client_id);
  return withHeader(0x10, body);
}

std::vector<std::uint8_t> publishV5(const std::string& topic, const std::string& payload,
                                    const std::vector<std::pair<std::string, std::string>>& props) {
  std::vector<std::uint8_t> body;
  putString(body, topic);
  std::vector<std::uint8_t> properties;
  for (const auto& [name, value] : props) {
    properties.push_back(0x26);
    putString(properties, name);
    putString(properties, value);
  }
  putVarint(body, properties.size());
  body.insert(body.end(), properties.begin(), properties.end());
  body.insert(body.end(), payload.begin(), payload.end());
  return withHeader(0x30, body);
}

std::vector<std::uint8_t> publishV311(const std::string& topic, const std::string& payload) {
  std::vector<std::uint8_t> body;
  putString(body, topic);
  body.insert(body.end(), payload.begin(), payload.end());
  return withHeader(0x30, body);
}

void NetTest::SetUp() {
  std::signal(SIGPIPE,
              SIG_IGN);  // as the server does: a peer gone mid-write is an error, not a kill
  base_.reset(event_base_new());
  dns_.reset(evdns_base_new(base_.get(), 0));
  config::TlsSettings tls;
  tls.cert_file = certPath("server-ec.pem");
  tls.key_file = certPath("server-ec.key");
  tls.client_ca_file = certPath("ca-bundle.pem");
  auto context = tls::TlsContext::create(tls);
  ASSERT_TRUE(context.ok()) << context.error().message;
  server_tls_ = *context;

  client_ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(client_ctx_, certPath("ca-bundle.pem").c_str(), nullptr);
  SSL_CTX_set_verify(client_ctx_, SSL_VERIFY_PEER, nullptr);

  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  broker_path_ = (std::filesystem::temp_directory_path() /
                  ("mqtls-net-" + std::to_string(::getpid()) + "-" + info->name()))
                     .string();
  ::unlink(broker_path_.c_str());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", broker_path_.c_str());
  broker_listener_.reset(evconnlistener_new_bind(
      base_.get(),
      [](evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* self) {
        auto* test = static_cast<NetTest*>(self);
        auto peer = std::make_unique<Peer>();
        peer->attach(bufferevent_socket_new(test->base(), fd, BEV_OPT_CLOSE_ON_FREE));
        test->brokers_.push_back(std::move(peer));
      },
      this, LEV_OPT_CLOSE_ON_FREE, 16, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  ASSERT_TRUE(broker_listener_) << "cannot listen on " << broker_path_;

  config_.upstream.unix_socket = broker_path_;
  config_.upstream.connect_timeout = std::chrono::seconds(2);
  config_.limits.handshake_timeout = std::chrono::seconds(5);
  config_.limits.connect_timeout = std::chrono::seconds(5);
  config_.limits.admission_timeout = std::chrono::seconds(2);
  config_.identity.user_properties = {{config::IdentitySource::Cn, "x-cert-cn"}};
  decider_ = std::make_unique<ScriptedDecider>(base_.get(), config_.identity);
}

void NetTest::TearDown() {
  owned_.clear();
  client.bev.reset();
  brokers_.clear();
  broker_listener_.reset();
  ::unlink(broker_path_.c_str());
  decider_.reset();
  dns_.reset();
  base_.reset();
  SSL_CTX_free(client_ctx_);
}

void NetTest::release(Connection* released) {
  closed.push_back(released->record());
  if (released == connection) {
    connection = nullptr;
  }
  owned_.erase(released);
}

Connection* NetTest::connect(const std::string& cert, const std::string& key) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    ADD_FAILURE() << "socketpair failed";
    return nullptr;
  }
  SSL* ssl = SSL_new(client_ctx_);
  if (!cert.empty()) {
    SSL_use_certificate_chain_file(ssl, certPath(cert).c_str());
    SSL_use_PrivateKey_file(ssl, certPath(key).c_str(), SSL_FILETYPE_PEM);
  }
  client = Peer{};
  client.attach(bufferevent_openssl_socket_new(base(), fds[1], ssl, BUFFEREVENT_SSL_CONNECTING,
                                               BEV_OPT_CLOSE_ON_FREE));
  sockaddr_un peer{};
  peer.sun_family = AF_UNIX;
  auto owned = std::make_unique<Connection>(*this, owned_.size() + 1, "test", server_tls_, fds[0],
                                            reinterpret_cast<sockaddr*>(&peer));
  connection = owned.get();
  owned_.emplace(connection, std::move(owned));
  connection->start();
  return connection;
}

bool NetTest::runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    timeval tick{0, 10'000};
    event_base_loopexit(base(), &tick);
    event_base_loop(base(), EVLOOP_ONCE);
  }
  return true;
}

void NetTest::runFor(std::chrono::milliseconds duration) {
  const auto end = std::chrono::steady_clock::now() + duration;
  runUntil([&] { return std::chrono::steady_clock::now() >= end; }, duration * 2);
}

double NetTest::counter(const std::string& family, const std::string& label,
                        const std::string& value) {
  double total = 0;
  for (const auto& collected : metrics_.registry().Collect()) {
    if (collected.name != family) {
      continue;
    }
    for (const auto& metric : collected.metric) {
      bool match = label.empty();
      for (const auto& pair : metric.label) {
        match = match || (pair.name == label && pair.value == value);
      }
      if (match) {
        total += collected.type == prometheus::MetricType::Gauge ? metric.gauge.value
                                                                 : metric.counter.value;
      }
    }
  }
  return total;
}

}  // namespace mqtls::net::testing

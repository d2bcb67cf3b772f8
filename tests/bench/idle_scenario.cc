// Idle connections: opens N MQTT connections (handshake + CONNECT/CONNACK, keep-alive 0) with a
// bounded number in flight, holds them all open, checks each is still alive with a PINGREQ, and
// reports how much the target's resident memory grew per connection. The connections are kept
// lean (no buffers beyond a few bytes, OpenSSL's buffers released while idle) so that tens of
// thousands fit in the generator; to a loopback IPv4 target they bind to 127.0.0.1..127.0.0.K
// in rotation so loopback ephemeral ports do not run out.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "event_loop.h"
#include "mqtt_wire.h"
#include "scenario.h"

namespace mqtls::bench {
namespace {

constexpr auto kOpenTimeout = std::chrono::seconds(10);  // TCP connect to CONNACK, per connection
constexpr auto kPingTimeout = std::chrono::seconds(10);  // PINGREQ to PINGRESP, all connections
constexpr auto kScanEvery = std::chrono::milliseconds(500);
constexpr std::size_t kConnectionsPerAddress = 20000;  // well below the ~28k ephemeral ports
constexpr std::uint8_t kPingreq[] = {0xC0, 0x00};
constexpr std::uint8_t kPingresp[] = {0xD0, 0x00};

enum class State { Idle, Connecting, Handshaking, AwaitingConnack, Open, AwaitingPong, Done };

class IdleRun;

// One connection. Every failure closes it, records why and tells the run; it never throws.
class IdleConnection : public EventHandler {
 public:
  explicit IdleConnection(IdleRun& run) : run_(run) {}
  ~IdleConnection() override { release(); }

  // Starts a non-blocking connect to `target`, from `source` unless its address is 0 (IPv4
  // targets only).
  void open(const sockaddr_in& source, const Endpoint& target, SSL_CTX* ctx,
            const std::string& client_id);
  void ping();
  // DISCONNECT and close_notify (best effort, never blocks), then close.
  void closeGracefully();
  void onEvents(std::uint32_t events) override;

  State state() const { return state_; }
  SSL* ssl() const { return ssl_.get(); }
  Clock::time_point openedAt() const { return opened_at_; }
  void fail(const std::string& what);

 private:
  void advance();
  bool handshake();
  bool flush();
  bool readAll();
  bool consume(const std::uint8_t* data, std::size_t size);
  void watch(std::uint32_t events);
  void release();
  std::string ioError(int ret, const char* what);

  IdleRun& run_;
  State state_ = State::Idle;
  int fd_ = -1;
  SslPtr ssl_;
  std::uint32_t interest_ = 0;
  bool wants_write_ = false;
  std::vector<std::uint8_t> out_;  // CONNECT or PINGREQ not yet written; empty when idle
  std::uint8_t in_[4] = {};
  std::size_t in_size_ = 0;
  Clock::time_point opened_at_{};
};

class IdleRun {
 public:
  IdleRun(const Options& options, const Target& target, const Scenario& scenario, SSL_CTX* ctx);
  RunResult run();

  EventLoop& loop() { return loop_; }
  // A CONNACK arrived: `connection` is open.
  void opened(IdleConnection& connection);
  void ponged() { ++ponged_; }
  void failed(State was, const std::string& what);

 private:
  void openMore();
  void expire(Clock::time_point now, Clock::duration limit, const char* what);
  bool openAll();
  void pingAll();
  void measureMemory(const std::vector<long>& before);
  std::vector<long> rss() const;

  const Options& options_;
  const Target& target_;
  const Scenario& scenario_;
  SSL_CTX* ctx_;
  EventLoop loop_;
  std::deque<IdleConnection> connections_;  // stable addresses: registered with epoll
  std::size_t sources_ = 1;
  std::size_t in_flight_ = 0;
  std::size_t open_ = 0;
  std::size_t ponged_ = 0;
  std::size_t finished_ = 0;  // opened or failed while opening
  std::string last_error_;
  RunResult result_;
};

void IdleConnection::open(const sockaddr_in& source, const Endpoint& target, SSL_CTX* ctx,
                          const std::string& client_id) {
  opened_at_ = Clock::now();
  state_ = State::Connecting;
  out_ = encodeConnect(client_id, 0);
  std::string error;
  fd_ = openClientSocket(target, error);
  if (fd_ < 0) {
    fail(error);
    return;
  }
  int one = 1;
  if (source.sin_addr.s_addr != 0 && target.family() == AF_INET) {
    setsockopt(fd_, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0) {
      fail(std::string("bind: ") + std::strerror(errno));
      return;
    }
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&target.address), target.length) != 0 &&
      errno != EINPROGRESS) {
    fail(std::string("connect: ") + std::strerror(errno));
    return;
  }
  if (ctx != nullptr) {
    ssl_.reset(SSL_new(ctx));
    SSL_set_fd(ssl_.get(), fd_);
    SSL_set_connect_state(ssl_.get());
    SSL_set_mode(ssl_.get(), SSL_MODE_RELEASE_BUFFERS);
    if (!applyServerName(ssl_.get(), target)) {
      fail("server name '" + target.server_name + "' refused by OpenSSL");
      return;
    }
  }
  interest_ = EPOLLOUT;
  run_.loop().add(fd_, this, interest_);
}

void IdleConnection::release() {
  if (fd_ >= 0) {
    run_.loop().remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  ssl_.reset();
  std::vector<std::uint8_t>().swap(out_);
}

void IdleConnection::fail(const std::string& what) {
  State was = state_;
  release();
  state_ = State::Done;
  run_.failed(was, what);
}

void IdleConnection::closeGracefully() {
  if (fd_ >= 0 && (state_ == State::Open || state_ == State::AwaitingPong)) {
    auto disconnect = encodeDisconnect();
    if (ssl_) {
      ERR_clear_error();
      std::size_t written = 0;
      SSL_write_ex(ssl_.get(), disconnect.data(), disconnect.size(), &written);
      SSL_shutdown(ssl_.get());
      ERR_clear_error();
    } else {
      ::send(fd_, disconnect.data(), disconnect.size(), MSG_NOSIGNAL);
    }
  }
  release();
  state_ = State::Done;
}

void IdleConnection::ping() {
  if (state_ != State::Open) {
    return;
  }
  state_ = State::AwaitingPong;
  out_.assign(std::begin(kPingreq), std::end(kPingreq));
  advance();
}

void IdleConnection::onEvents(std::uint32_t) {
  if (state_ == State::Connecting) {
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      fail(std::string("connect: ") + std::strerror(error));
      return;
    }
    state_ = ssl_ ? State::Handshaking : State::AwaitingConnack;
  }
  advance();
}

// Moves the connection as far as the socket allows; sets the epoll interest for the rest.
void IdleConnection::advance() {
  if (state_ == State::Handshaking && !handshake()) {
    return;
  }
  if (!flush() || !readAll()) {
    return;
  }
  watch(EPOLLIN | (wants_write_ || !out_.empty() ? std::uint32_t{EPOLLOUT} : 0u));
}

bool IdleConnection::handshake() {
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_.get());
  if (ret == 1) {
    state_ = State::AwaitingConnack;
    return true;
  }
  int code = SSL_get_error(ssl_.get(), ret);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
    watch(code == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
    return false;
  }
  fail(ioError(ret, "TLS handshake"));
  return false;
}

// Writes pending output; false if the connection failed.
bool IdleConnection::flush() {
  wants_write_ = false;
  while (!out_.empty()) {
    std::size_t written = 0;
    if (ssl_) {
      ERR_clear_error();
      int ret = SSL_write_ex(ssl_.get(), out_.data(), out_.size(), &written);
      if (ret != 1) {
        int code = SSL_get_error(ssl_.get(), ret);
        if (code == SSL_ERROR_WANT_WRITE || code == SSL_ERROR_WANT_READ) {
          wants_write_ = true;
          return true;
        }
        fail(ioError(ret, "TLS write"));
        return false;
      }
    } else {
      ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        wants_write_ = true;
        return true;
      }
      if (n < 0) {
        fail(std::string("write: ") + std::strerror(errno));
        return false;
      }
      written = static_cast<std::size_t>(n);
    }
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(written));
  }
  std::vector<std::uint8_t>().swap(out_);
  return true;
}

// Reads until the socket would block; false if the connection failed.
bool IdleConnection::readAll() {
  std::uint8_t buffer[256];
  for (;;) {
    std::size_t n = 0;
    if (ssl_) {
      ERR_clear_error();
      int ret = SSL_read_ex(ssl_.get(), buffer, sizeof buffer, &n);
      if (ret != 1) {
        int code = SSL_get_error(ssl_.get(), ret);
        if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
          wants_write_ = wants_write_ || code == SSL_ERROR_WANT_WRITE;
          return true;
        }
        fail(ioError(ret, "closed by the server"));
        return false;
      }
    } else {
      ssize_t got = ::read(fd_, buffer, sizeof buffer);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        return true;
      }
      if (got <= 0) {
        fail(got == 0 ? "closed by the server" : std::string("read: ") + std::strerror(errno));
        return false;
      }
      n = static_cast<std::size_t>(got);
    }
    if (!consume(buffer, n)) {
      return false;
    }
  }
}

// Accepts exactly CONNACK (accepted) while opening and PINGRESP after a PINGREQ.
bool IdleConnection::consume(const std::uint8_t* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    in_[in_size_++] = data[i];
    if (state_ == State::AwaitingConnack && in_size_ == 4) {
      if (in_[0] != 0x20 || in_[1] != 2 || in_[3] != 0) {
        fail("no accepting CONNACK (return code " + std::to_string(in_[3]) + ")");
        return false;
      }
      in_size_ = 0;
      state_ = State::Open;
      run_.opened(*this);
    } else if (state_ == State::AwaitingPong && in_size_ == 2) {
      if (std::memcmp(in_, kPingresp, 2) != 0) {
        fail("unexpected packet instead of PINGRESP");
        return false;
      }
      in_size_ = 0;
      state_ = State::Open;
      run_.ponged();
    } else if (state_ != State::AwaitingConnack && state_ != State::AwaitingPong) {
      fail("unexpected data on an idle connection");
      return false;
    }
  }
  return true;
}

void IdleConnection::watch(std::uint32_t events) {
  if (fd_ >= 0 && events != interest_) {
    run_.loop().modify(fd_, this, events);
    interest_ = events;
  }
}

std::string IdleConnection::ioError(int ret, const char* what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return std::string(what) + ": " + text;
  }
  return std::string(what) + (ret == 0 || errno == 0 ? "" : std::string(": ") + strerror(errno));
}

IdleRun::IdleRun(const Options& options, const Target& target, const Scenario& scenario,
                 SSL_CTX* ctx)
    : options_(options), target_(target), scenario_(scenario), ctx_(ctx) {
  result_.scenario = scenario.name;
  result_.target = target.name;
  const bool loopback = target.endpoint.isLoopbackV4();
  std::size_t wanted =
      options.source_addresses > 0
          ? static_cast<std::size_t>(options.source_addresses)
          : (scenario.connections + kConnectionsPerAddress - 1) / kConnectionsPerAddress;
  sources_ = loopback ? std::clamp<std::size_t>(wanted, 1, 254) : 1;
}

void IdleRun::opened(IdleConnection& connection) {
  ++open_;
  ++finished_;
  --in_flight_;
  if (result_.tls.empty()) {
    result_.tls = describeTls(connection.ssl());
  }
}

void IdleRun::failed(State was, const std::string& what) {
  last_error_ = what;
  result_.errors++;
  if (was != State::Open && was != State::AwaitingPong) {
    ++finished_;
    --in_flight_;
  } else {
    --open_;
  }
}

void IdleRun::openMore() {
  while (in_flight_ < static_cast<std::size_t>(options_.idle_inflight) &&
         connections_.size() < scenario_.connections) {
    std::size_t index = connections_.size();
    sockaddr_in source{};
    source.sin_family = AF_INET;
    if (sources_ > 1) {
      source.sin_addr.s_addr = htonl(0x7F000001u + static_cast<std::uint32_t>(index % sources_));
    }
    auto& connection = connections_.emplace_back(*this);
    ++in_flight_;
    connection.open(source, target_.endpoint, ctx_,
                    "bench-idle-" + std::to_string(getpid()) + "-" + std::to_string(index));
  }
}

// Fails every connection still short of its goal after `limit`.
void IdleRun::expire(Clock::time_point now, Clock::duration limit, const char* what) {
  for (auto& connection : connections_) {
    State state = connection.state();
    bool waiting = state != State::Open && state != State::Done && state != State::Idle;
    if (waiting && now - connection.openedAt() > limit) {
      connection.fail(what);
    }
  }
}

// Opens all connections; true when none failed.
bool IdleRun::openAll() {
  auto next_scan = Clock::now() + kScanEvery;
  auto after_batch = [&] {
    auto now = Clock::now();
    if (now >= next_scan) {
      expire(now, kOpenTimeout, "no CONNACK within 10 s");
      next_scan = now + kScanEvery;
    }
    openMore();
    if (finished_ == scenario_.connections) {
      loop_.stop();
    }
  };
  openMore();
  // Bounded by the per-connection timeout; the deadline is only a backstop.
  loop_.run(Clock::now() + std::chrono::hours(24), after_batch);
  return result_.errors == 0;
}

void IdleRun::pingAll() {
  for (auto& connection : connections_) {
    connection.ping();
  }
  auto deadline = Clock::now() + kPingTimeout;
  loop_.run(deadline, [&] {
    if (ponged_ >= open_) {
      loop_.stop();
    }
  });
  for (auto& connection : connections_) {
    if (connection.state() == State::AwaitingPong) {
      connection.fail("no PINGRESP within 10 s");
    }
  }
}

std::vector<long> IdleRun::rss() const {
  std::vector<long> kib;
  for (int pid : target_.pids) {
    kib.push_back(processRssKib(pid));
  }
  return kib;
}

void IdleRun::measureMemory(const std::vector<long>& before) {
  auto after = rss();
  for (std::size_t i = 0; i < after.size(); ++i) {
    double grown = before[i] >= 0 && after[i] >= 0 ? static_cast<double>(after[i] - before[i]) : 0;
    if (i == 0) {
      result_.memory_server_kib = grown;
    }
    result_.memory_total_kib += grown;
  }
}

RunResult IdleRun::run() {
  auto before = rss();
  CpuMeter meter(target_.pids);
  meter.start();
  auto start = Clock::now();
  openAll();
  meter.stop(result_);
  result_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result_.ops = open_;
  // Events while holding can only be closes or stray data: both count as errors.
  loop_.run(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(options_.duration)));
  result_.connections = open_;
  measureMemory(before);
  pingAll();
  for (auto& connection : connections_) {
    connection.closeGracefully();
  }
  if (result_.errors > 0 || open_ != scenario_.connections) {
    result_.failure = std::to_string(result_.errors) + " of " +
                      std::to_string(scenario_.connections) +
                      " connections failed or did not stay open; last error: " + last_error_;
  }
  return std::move(result_);
}

}  // namespace

RunResult runIdleScenario(const Options& options, const Target& target, const Scenario& scenario,
                          const ClientContexts& contexts) {
  IdleRun run(options, target, scenario, contexts.client);
  return run.run();
}

}  // namespace mqtls::bench

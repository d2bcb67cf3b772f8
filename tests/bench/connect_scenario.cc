// Connect rate: C loops, each opening a new connection, completing the handshake and the
// CONNECT/CONNACK exchange, sending DISCONNECT and starting over. With resumption, each loop
// offers the newest session it holds; for TLS 1.3 that is the ticket that arrived before the
// CONNACK (the server sends it right after the handshake).
#include <memory>
#include <vector>

#include "mqtt_client.h"
#include "scenario.h"

namespace mqtls::bench {
namespace {

// An attempt still open this long after it began counts as stalled.
constexpr auto kStallAfter = std::chrono::seconds(2);

class ConnectRun;

class ConnectLoop : public MqttClient {
 public:
  ConnectLoop(EventLoop& loop, ConnectRun& run) : MqttClient(loop), run_(run) {}
  SslSessionPtr session;

 protected:
  void onConnected() override;
  void onPacket(const Frame&) override {}
  void onFailure(const std::string& what, bool fatal) override;

 private:
  ConnectRun& run_;
};

class ConnectRun {
 public:
  ConnectRun(const Options& options, const Target& target, const Scenario& scenario, SSL_CTX* ctx)
      : options_(options), target_(target), scenario_(scenario), ctx_(ctx) {
    result_.scenario = scenario.name;
    result_.target = target.name;
  }

  RunResult run();
  void completed(ConnectLoop& loop);
  void failed(const std::string& what, bool fatal);

 private:
  void reopenIdle();
  void countStalled(Clock::time_point end);

  const Options& options_;
  const Target& target_;
  const Scenario& scenario_;
  SSL_CTX* ctx_;
  EventLoop loop_;
  std::vector<std::unique_ptr<ConnectLoop>> loops_;
  std::uint64_t next_id_ = 0;
  bool measuring_ = false;
  std::string last_error_;
  RunResult result_;
};

void ConnectLoop::onConnected() {
  run_.completed(*this);
  close(true);
}

void ConnectLoop::onFailure(const std::string& what, bool fatal) {
  run_.failed(what, fatal);
}

void ConnectRun::completed(ConnectLoop& loop) {
  auto now = Clock::now();
  SSL* ssl = loop.transport()->ssl();
  if (scenario_.resume) {
    SslSessionPtr session(SSL_get1_session(ssl));
    if (session && SSL_SESSION_is_resumable(session.get())) {
      loop.session = std::move(session);
    }
  }
  if (result_.tls.empty() || (scenario_.resume && loop.transport()->resumed())) {
    result_.tls = describeTls(ssl);
  }
  if (measuring_) {
    result_.ops++;
    result_.resumed += loop.transport()->resumed() ? 1 : 0;
    auto latency = std::chrono::duration_cast<std::chrono::microseconds>(now - loop.openedAt());
    result_.latency_us.push_back(static_cast<std::uint32_t>(latency.count()));
  }
}

void ConnectRun::failed(const std::string& what, bool fatal) {
  last_error_ = what;
  if (measuring_) {
    result_.errors++;
  }
  if (fatal) {
    result_.failure = what;
    loop_.stop();
  }
}

void ConnectRun::reopenIdle() {
  for (auto& loop : loops_) {
    if (loop->isOpen()) {
      continue;
    }
    std::string id = "bench-" + scenario_.name + "-" + std::to_string(next_id_++);
    try {
      loop->open(target_.endpoint, ctx_, loop->session.get(), id);
    } catch (const OpenError& error) {
      failed(error.what(), false);
    }
  }
}

void ConnectRun::countStalled(Clock::time_point end) {
  for (auto& loop : loops_) {
    if (loop->isOpen() && end - loop->openedAt() > kStallAfter) {
      result_.errors++;
      last_error_ = "no CONNACK within 2 s";
    }
    loop->close(false);
  }
}

RunResult ConnectRun::run() {
  for (int i = 0; i < options_.concurrency; ++i) {
    loops_.push_back(std::make_unique<ConnectLoop>(loop_, *this));
  }
  auto reopen = [this] { reopenIdle(); };
  reopenIdle();
  loop_.run(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(options_.warmup)),
            reopen);
  CpuMeter meter(target_.pids);
  meter.start();
  measuring_ = true;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(options_.duration));
  if (result_.failure.empty()) {
    loop_.run(end, reopen);
  }
  measuring_ = false;
  meter.stop(result_);
  auto stopped = Clock::now();
  result_.seconds = std::chrono::duration<double>(stopped - start).count();
  countStalled(stopped);
  if (result_.failure.empty() && (result_.ops == 0 || result_.errors * 20 > result_.ops)) {
    result_.failure = std::to_string(result_.errors) + " failed attempts, " +
                      std::to_string(result_.ops) + " completed; last error: " + last_error_;
  }
  // A resumed scenario proves its resumptions: a target that resumes fewer than nine in ten
  // measures full handshakes under the wrong name.
  if (result_.failure.empty() && scenario_.resume && result_.resumed * 10 < result_.ops * 9) {
    result_.failure = "resumption not proven: " + std::to_string(result_.resumed) + " of " +
                      std::to_string(result_.ops) + " handshakes resumed";
  }
  return std::move(result_);
}

}  // namespace

RunResult runConnectScenario(const Options& options, const Target& target, const Scenario& scenario,
                             const ClientContexts& contexts) {
  ConnectRun run(options, target, scenario, contexts.client);
  return run.run();
}

std::string describeTls(SSL* ssl) {
  if (ssl == nullptr) {
    return "plaintext";
  }
  std::string text = SSL_get_version(ssl);
  text += " ";
  text += SSL_get_cipher_name(ssl);
  int group = SSL_get_negotiated_group(ssl);
  if (group != 0) {
    const char* name = SSL_group_to_name(ssl, group);
    text += " ";
    text += name != nullptr ? name : std::to_string(group);
  }
  return text;
}

}  // namespace mqtls::bench

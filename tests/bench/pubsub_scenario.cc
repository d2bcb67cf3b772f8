// Message throughput and ping-pong latency: one subscriber and N publishers, all connected
// through the target, on one topic at QoS 0. Each publisher keeps at most `window` payload bytes
// in flight, counted from the sequence numbers the subscriber has seen (so a lost message
// cannot stall it); ping-pong is the same with a window of one message.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "mqtt_client.h"
#include "scenario.h"

namespace mqtls::bench {
namespace {

constexpr std::uint32_t kMagic = 0x4d515442;  // "MQTB"
constexpr std::size_t kHeaderBytes = 24;      // magic, publisher, sequence, send time
constexpr std::size_t kMaxPendingOutput = 64 * 1024;
constexpr auto kSetupTimeout = std::chrono::seconds(10);

std::uint64_t nowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct MessageHeader {
  std::uint32_t magic;
  std::uint32_t publisher;
  std::uint64_t sequence;
  std::uint64_t sent_ns;
};
static_assert(sizeof(MessageHeader) == kHeaderBytes);

class PubSubRun;

class Subscriber : public MqttClient {
 public:
  Subscriber(EventLoop& loop, PubSubRun& run) : MqttClient(loop), run_(run) {}

 protected:
  void onConnected() override;
  void onPacket(const Frame& frame) override;
  void onFailure(const std::string& what, bool fatal) override;

 private:
  PubSubRun& run_;
};

class Publisher : public MqttClient {
 public:
  Publisher(EventLoop& loop, PubSubRun& run, std::uint32_t index, std::uint64_t window)
      : MqttClient(loop), run_(run), index_(index), window_(window) {}

  bool ready() const { return ready_; }
  std::uint64_t freeWindow() const { return window_ - (next_sequence_ - acknowledged_); }
  // Nothing waits for the socket and at least a quarter of the window is free.
  bool wantsMore() const {
    return pendingOutput() == 0 && freeWindow() >= std::max<std::uint64_t>(1, window_ / 4);
  }
  // The subscriber saw `sequence`: it and everything before it have left the network. Adds
  // skipped sequence numbers to `lost`; false if `sequence` was seen already.
  bool acknowledge(std::uint64_t sequence, std::uint64_t& lost);
  // Sends as many messages as the window and the output buffer allow.
  void pump();

 protected:
  void onConnected() override;
  void onPacket(const Frame&) override {}
  void onFailure(const std::string& what, bool fatal) override;
  void onDrained() override { pump(); }

 private:
  void appendMessage();

  PubSubRun& run_;
  std::uint32_t index_;
  std::uint64_t window_;
  bool ready_ = false;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t acknowledged_ = 0;  // next sequence the subscriber is expected to see
};

class PubSubRun {
 public:
  PubSubRun(const Options& options, const Target& target, const Scenario& scenario,
            const ClientContexts& contexts);
  RunResult run();

  const std::string& topic() const { return topic_; }
  std::size_t payloadSize() const { return scenario_.payload; }
  bool publishing() const { return publishing_; }
  void connected() { checkReady(); }
  void subscribed() {
    subscribed_ = true;
    checkReady();
  }
  void message(std::span<const std::uint8_t> payload);
  void failed(const std::string& what, bool fatal);

 private:
  bool setUp();
  void checkReady();
  void pumpPublishers();
  void measure(std::chrono::duration<double> duration);

  const Options& options_;
  const Target& target_;
  const Scenario& scenario_;
  ClientContexts contexts_;
  std::string topic_;
  EventLoop loop_;
  Subscriber subscriber_;
  std::vector<std::unique_ptr<Publisher>> publishers_;
  bool subscribed_ = false;
  bool ready_ = false;
  bool publishing_ = false;
  bool measuring_ = false;
  RunResult result_;
};

void Subscriber::onConnected() {
  auto subscribe = encodeSubscribe(1, run_.topic());
  output().insert(output().end(), subscribe.begin(), subscribe.end());
  flush();
}

void Subscriber::onPacket(const Frame& frame) {
  if (frame.type == PacketType::Suback) {
    if (frame.body.size() != 3 || frame.body[2] == 0x80) {
      run_.failed("SUBSCRIBE refused", true);
      return;
    }
    run_.subscribed();
  } else if (frame.type == PacketType::Publish) {
    run_.message(publishPayload(frame.body));
  }
}

void Subscriber::onFailure(const std::string& what, bool) {
  run_.failed("subscriber: " + what, true);
}

void Publisher::onConnected() {
  ready_ = true;
  run_.connected();
}

void Publisher::onFailure(const std::string& what, bool) {
  run_.failed("publisher: " + what, true);
}

bool Publisher::acknowledge(std::uint64_t sequence, std::uint64_t& lost) {
  if (sequence < acknowledged_ || sequence >= next_sequence_) {
    return false;
  }
  lost += sequence - acknowledged_;
  acknowledged_ = sequence + 1;
  return true;
}

void Publisher::appendMessage() {
  auto& out = output();
  appendPublishHeader(out, run_.topic(), run_.payloadSize());
  MessageHeader header{kMagic, index_, next_sequence_++, nowNanos()};
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(&header);
  out.insert(out.end(), bytes, bytes + sizeof header);
  out.resize(out.size() + run_.payloadSize() - sizeof header, 'x');
}

void Publisher::pump() {
  if (!ready_ || !run_.publishing()) {
    return;
  }
  while (isOpen() && freeWindow() > 0) {
    while (freeWindow() > 0 && pendingOutput() < kMaxPendingOutput) {
      appendMessage();
    }
    flush();
    if (pendingOutput() > 0) {
      return;  // the socket is full; onDrained() continues
    }
  }
}

PubSubRun::PubSubRun(const Options& options, const Target& target, const Scenario& scenario,
                     const ClientContexts& contexts)
    : options_(options),
      target_(target),
      scenario_(scenario),
      contexts_(contexts),
      topic_("bench/" + target.name + "/" + scenario.name + "/" + std::to_string(getpid())),
      subscriber_(loop_, *this) {
  result_.scenario = scenario.name;
  result_.target = target.name;
  bool ping_pong = scenario.kind == ScenarioKind::PingPong;
  std::uint64_t window =
      ping_pong ? 1 : std::max<std::uint64_t>(1, options.window / scenario.payload);
  int count = ping_pong ? 1 : options.publishers;
  for (int i = 0; i < count; ++i) {
    publishers_.push_back(std::make_unique<Publisher>(loop_, *this, i, window));
  }
}

void PubSubRun::message(std::span<const std::uint8_t> payload) {
  MessageHeader header{};
  if (payload.size() == scenario_.payload) {
    std::memcpy(&header, payload.data(), sizeof header);
  }
  if (header.magic != kMagic || header.publisher >= publishers_.size()) {
    failed("subscriber received a corrupted message", true);
    return;
  }
  std::uint64_t lost = 0;
  if (!publishers_[header.publisher]->acknowledge(header.sequence, lost)) {
    failed("subscriber received a message twice or out of order", true);
    return;
  }
  if (!measuring_) {
    return;
  }
  result_.ops++;
  result_.errors += lost;
  result_.payload_bytes += payload.size();
  if (scenario_.kind == ScenarioKind::PingPong) {
    auto micros = (nowNanos() - header.sent_ns) / 1000;
    result_.latency_us.push_back(static_cast<std::uint32_t>(micros));
  }
}

void PubSubRun::failed(const std::string& what, bool) {
  if (result_.failure.empty()) {
    result_.failure = what;
  }
  loop_.stop();
}

void PubSubRun::checkReady() {
  for (const auto& publisher : publishers_) {
    if (!publisher->ready()) {
      return;
    }
  }
  if (subscribed_) {
    ready_ = true;
    loop_.stop();
  }
}

// Runs once per batch of events rather than per message, so publishers write full TLS records
// instead of one record per message.
void PubSubRun::pumpPublishers() {
  for (auto& publisher : publishers_) {
    if (publisher->wantsMore()) {
      publisher->pump();
    }
  }
}

bool PubSubRun::setUp() {
  std::string suffix = "-" + scenario_.name + "-" + std::to_string(getpid());
  try {
    subscriber_.open(target_.address, contexts_.subscriber, nullptr, "bench-sub" + suffix);
    for (std::size_t i = 0; i < publishers_.size(); ++i) {
      publishers_[i]->open(target_.address, contexts_.client, nullptr,
                           "bench-pub" + std::to_string(i) + suffix);
    }
  } catch (const OpenError& error) {
    failed(error.what(), true);
    return false;
  }
  loop_.run(Clock::now() + kSetupTimeout);
  if (result_.failure.empty() && !ready_) {
    failed("subscriber and publishers not ready within 10 s", true);
  }
  return result_.failure.empty();
}

void PubSubRun::measure(std::chrono::duration<double> duration) {
  CpuMeter meter(target_.pids);
  meter.start();
  measuring_ = true;
  auto start = Clock::now();
  loop_.run(start + std::chrono::duration_cast<Clock::duration>(duration),
            [this] { pumpPublishers(); });
  measuring_ = false;
  meter.stop(result_);
  result_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
}

RunResult PubSubRun::run() {
  if (setUp()) {
    result_.tls = describeTls(subscriber_.transport()->ssl());
    publishing_ = true;
    pumpPublishers();
    auto warmup = std::chrono::duration<double>(options_.warmup);
    loop_.run(Clock::now() + std::chrono::duration_cast<Clock::duration>(warmup),
              [this] { pumpPublishers(); });
    if (result_.failure.empty()) {
      measure(std::chrono::duration<double>(options_.duration));
    }
  }
  subscriber_.close(true);
  for (auto& publisher : publishers_) {
    publisher->close(true);
  }
  if (result_.failure.empty() && (result_.ops == 0 || result_.errors * 100 > result_.ops)) {
    result_.failure = std::to_string(result_.ops) + " messages received, " +
                      std::to_string(result_.errors) + " lost";
  }
  return std::move(result_);
}

}  // namespace

RunResult runPubSubScenario(const Options& options, const Target& target, const Scenario& scenario,
                            const ClientContexts& contexts) {
  PubSubRun run(options, target, scenario, contexts);
  return run.run();
}

}  // namespace mqtls::bench

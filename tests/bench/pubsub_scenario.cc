// Message throughput and ping-pong latency: S subscribers and N publishers, all connected
// through the target, on one topic at QoS 0 or 1; every subscriber receives every message, and
// each delivery counts. Each publisher keeps at most `window` payload bytes in flight, counted
// from the sequence numbers the slowest subscriber has seen (so a lost message cannot stall it)
// and at QoS 1 also from the PUBACKs it has received; ping-pong is the same with a window of one
// message. With a rate, publishers share it evenly and send what their share allows after each
// batch of events. Latency is publish to delivery.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "mqtt_client.h"
#include "mqtt_wire.h"
#include "scenario.h"

namespace mqtls::bench {
namespace {

constexpr std::uint32_t kMagic = 0x4d515442;  // "MQTB"
constexpr std::size_t kHeaderBytes = 24;      // magic, publisher, sequence, send time
constexpr std::size_t kMaxPendingOutput = 64 * 1024;
constexpr auto kSetupTimeout = std::chrono::seconds(10);
constexpr std::uint8_t kPuback = 4;
constexpr std::uint64_t kMaxPacketIds = 65535;

void appendU16(std::vector<std::uint8_t>& out, std::size_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value & 0xFF));
}

// PUBLISH fixed header, topic and (QoS 1) packet id; the caller appends the payload.
void appendPublish(std::vector<std::uint8_t>& out, std::string_view topic, int qos,
                   std::uint16_t packet_id, std::size_t payload_size) {
  if (qos == 0) {
    appendPublishHeader(out, topic, payload_size);
    return;
  }
  out.push_back(0x32);
  appendLength(out, 2 + topic.size() + 2 + payload_size);
  appendU16(out, topic.size());
  out.insert(out.end(), topic.begin(), topic.end());
  appendU16(out, packet_id);
}

// SUBSCRIBE (packet id 1) to one topic filter at `qos`.
std::vector<std::uint8_t> subscribePacket(std::string_view topic, int qos) {
  std::vector<std::uint8_t> body;
  appendU16(body, 1);
  appendU16(body, topic.size());
  body.insert(body.end(), topic.begin(), topic.end());
  body.push_back(static_cast<std::uint8_t>(qos));
  std::vector<std::uint8_t> out{0x82};
  appendLength(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// Packet ids 1..65535 in turn, one per sequence number.
std::uint16_t packetIdFor(std::uint64_t sequence) {
  return static_cast<std::uint16_t>(sequence % kMaxPacketIds + 1);
}

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
  Subscriber(EventLoop& loop, PubSubRun& run, std::size_t index)
      : MqttClient(loop), run_(run), index_(index) {}
  // Sends the PUBACKs queued since the last call (QoS 1), in as few TLS records as possible.
  void flushAcks() {
    if (isOpen() && pendingOutput() > 0) {
      flush();
    }
  }

 protected:
  void onConnected() override;
  void onPacket(const Frame& frame) override;
  void onFailure(const std::string& what, bool fatal) override;

 private:
  PubSubRun& run_;
  std::size_t index_;
};

class Publisher : public MqttClient {
 public:
  Publisher(EventLoop& loop, PubSubRun& run, std::uint32_t index, std::uint64_t window)
      : MqttClient(loop), run_(run), index_(index), window_(window) {}

  bool ready() const { return ready_; }
  // Messages that may be sent now: the free part of the window, capped by the rate's share.
  std::uint64_t sendable() const;
  // Nothing waits for the socket and at least a quarter of the window (with a rate: one
  // message) may be sent.
  bool wantsMore() const;
  // Messages sent so far (the next sequence number).
  std::uint64_t sent() const { return next_sequence_; }
  // Every subscriber has seen up to `sequence` (exclusive): those have left the network.
  void acknowledgeUpTo(std::uint64_t sequence) { acknowledged_ = sequence; }
  // Sends as many messages as the window and the output buffer allow.
  void pump();

 protected:
  void onConnected() override;
  void onPacket(const Frame& frame) override;
  void onFailure(const std::string& what, bool fatal) override;
  void onDrained() override { pump(); }

 private:
  void appendMessage();

  PubSubRun& run_;
  std::uint32_t index_;
  std::uint64_t window_;
  bool ready_ = false;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t acknowledged_ = 0;  // next sequence the slowest subscriber is expected to see
  std::uint64_t pubacked_ = 0;      // QoS 1: next sequence whose PUBACK is expected
};

class PubSubRun {
 public:
  PubSubRun(const Options& options, const Target& target, const Scenario& scenario,
            const ClientContexts& contexts);
  RunResult run();

  const std::string& topic() const { return topic_; }
  std::size_t payloadSize() const { return scenario_.payload; }
  int qos() const { return scenario_.qos; }
  bool paced() const { return options_.rate > 0; }
  // With a rate: how many messages each publisher may have sent by now; unlimited without.
  std::uint64_t allowance() const;
  bool publishing() const { return publishing_; }
  void connected() { checkReady(); }
  void subscribed() {
    ++subscribed_;
    checkReady();
  }
  void message(std::size_t subscriber, std::span<const std::uint8_t> payload);
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
  std::vector<std::unique_ptr<Subscriber>> subscribers_;
  std::vector<std::unique_ptr<Publisher>> publishers_;
  // seen_[s][p]: the next sequence number of publisher p that subscriber s expects.
  std::vector<std::vector<std::uint64_t>> seen_;
  std::size_t subscribed_ = 0;
  bool ready_ = false;
  bool publishing_ = false;
  bool measuring_ = false;
  Clock::time_point publishing_since_{};
  RunResult result_;
};

void Subscriber::onConnected() {
  auto subscribe = subscribePacket(run_.topic(), run_.qos());
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
    auto payload = publishPayload(frame.body);
    if ((frame.flags & 0x06) != 0) {  // QoS 1 or 2: a packet id precedes the payload
      if (payload.size() < 2) {
        run_.failed("subscriber received a malformed PUBLISH", true);
        return;
      }
      std::uint8_t puback[] = {kPuback << 4, 2, payload[0], payload[1]};
      output().insert(output().end(), std::begin(puback), std::end(puback));
      payload = payload.subspan(2);
    }
    run_.message(index_, payload);
  }
}

void Subscriber::onFailure(const std::string& what, bool) {
  run_.failed("subscriber: " + what, true);
}

void Publisher::onConnected() {
  ready_ = true;
  run_.connected();
}

void Publisher::onPacket(const Frame& frame) {
  if (static_cast<std::uint8_t>(frame.type) != kPuback) {
    return;
  }
  if (frame.body.size() < 2 || pubacked_ >= next_sequence_ ||
      ((frame.body[0] << 8) | frame.body[1]) != packetIdFor(pubacked_)) {
    run_.failed("publisher received a PUBACK for a packet id it did not expect", true);
    return;
  }
  ++pubacked_;
}

std::uint64_t Publisher::sendable() const {
  std::uint64_t oldest = run_.qos() > 0 ? std::min(acknowledged_, pubacked_) : acknowledged_;
  std::uint64_t in_window = window_ - (next_sequence_ - oldest);
  std::uint64_t allowed = run_.allowance();
  return std::min(in_window, allowed > next_sequence_ ? allowed - next_sequence_ : 0);
}

bool Publisher::wantsMore() const {
  std::uint64_t least = run_.paced() ? 1 : std::max<std::uint64_t>(1, window_ / 4);
  return pendingOutput() == 0 && sendable() >= least;
}

void Publisher::onFailure(const std::string& what, bool) {
  run_.failed("publisher: " + what, true);
}

void Publisher::appendMessage() {
  auto& out = output();
  appendPublish(out, run_.topic(), run_.qos(), packetIdFor(next_sequence_), run_.payloadSize());
  MessageHeader header{kMagic, index_, next_sequence_++, nowNanos()};
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(&header);
  out.insert(out.end(), bytes, bytes + sizeof header);
  out.resize(out.size() + run_.payloadSize() - sizeof header, 'x');
}

void Publisher::pump() {
  if (!ready_ || !run_.publishing()) {
    return;
  }
  while (isOpen() && sendable() > 0) {
    while (sendable() > 0 && pendingOutput() < kMaxPendingOutput) {
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
      topic_(options.topic_prefix + "/" + target.name + "/" + scenario.name + "/" +
             std::to_string(getpid())) {
  result_.scenario = scenario.name;
  result_.target = target.name;
  bool ping_pong = scenario.kind == ScenarioKind::PingPong;
  std::uint64_t window =
      ping_pong ? 1 : std::max<std::uint64_t>(1, options.window / scenario.payload);
  window = std::min(window, kMaxPacketIds);
  int count = ping_pong ? 1 : options.publishers;
  for (int i = 0; i < count; ++i) {
    publishers_.push_back(std::make_unique<Publisher>(loop_, *this, i, window));
  }
  for (int i = 0; i < options.subscribers; ++i) {
    subscribers_.push_back(std::make_unique<Subscriber>(loop_, *this, i));
  }
  seen_.assign(subscribers_.size(), std::vector<std::uint64_t>(publishers_.size(), 0));
}

void PubSubRun::message(std::size_t subscriber, std::span<const std::uint8_t> payload) {
  MessageHeader header{};
  if (payload.size() == scenario_.payload) {
    std::memcpy(&header, payload.data(), sizeof header);
  }
  if (header.magic != kMagic || header.publisher >= publishers_.size()) {
    failed("subscriber received a corrupted message", true);
    return;
  }
  Publisher& publisher = *publishers_[header.publisher];
  std::uint64_t& expected = seen_[subscriber][header.publisher];
  if (header.sequence < expected || header.sequence >= publisher.sent()) {
    failed("subscriber received a message twice or out of order", true);
    return;
  }
  const std::uint64_t lost = header.sequence - expected;  // skipped: lost on the way
  expected = header.sequence + 1;
  std::uint64_t slowest = expected;
  for (const auto& seen : seen_) {
    slowest = std::min(slowest, seen[header.publisher]);
  }
  publisher.acknowledgeUpTo(slowest);
  if (!measuring_) {
    return;
  }
  result_.ops++;
  result_.errors += lost;
  result_.payload_bytes += payload.size();
  auto micros = (nowNanos() - header.sent_ns) / 1000;
  result_.latency_us.push_back(static_cast<std::uint32_t>(micros));
}

std::uint64_t PubSubRun::allowance() const {
  if (options_.rate <= 0) {
    return UINT64_MAX;
  }
  double seconds = std::chrono::duration<double>(Clock::now() - publishing_since_).count();
  return 1 + static_cast<std::uint64_t>(seconds * options_.rate / publishers_.size());
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
  if (subscribed_ == subscribers_.size()) {
    ready_ = true;
    loop_.stop();
  }
}

// Runs once per batch of events rather than per message, so publishers write full TLS records
// instead of one record per message.
void PubSubRun::pumpPublishers() {
  for (auto& subscriber : subscribers_) {
    subscriber->flushAcks();
  }
  for (auto& publisher : publishers_) {
    if (publisher->wantsMore()) {
      publisher->pump();
    }
  }
}

bool PubSubRun::setUp() {
  std::string suffix = "-" + scenario_.name + "-" + std::to_string(getpid());
  try {
    for (std::size_t i = 0; i < subscribers_.size(); ++i) {
      subscribers_[i]->open(target_.endpoint, contexts_.subscriber, nullptr,
                            "bench-sub" + std::to_string(i) + suffix);
    }
    for (std::size_t i = 0; i < publishers_.size(); ++i) {
      publishers_[i]->open(target_.endpoint, contexts_.client, nullptr,
                           "bench-pub" + std::to_string(i) + suffix);
    }
  } catch (const OpenError& error) {
    failed(error.what(), true);
    return false;
  }
  loop_.run(Clock::now() + kSetupTimeout);
  if (result_.failure.empty() && !ready_) {
    failed("subscribers and publishers not ready within 10 s", true);
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
    result_.tls = describeTls(subscribers_.front()->transport()->ssl());
    publishing_ = true;
    publishing_since_ = Clock::now();
    pumpPublishers();
    auto warmup = std::chrono::duration<double>(options_.warmup);
    loop_.run(Clock::now() + std::chrono::duration_cast<Clock::duration>(warmup),
              [this] { pumpPublishers(); });
    if (result_.failure.empty()) {
      measure(std::chrono::duration<double>(options_.duration));
    }
  }
  for (auto& subscriber : subscribers_) {
    subscriber->close(true);
  }
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

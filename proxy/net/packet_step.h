// Framed streaming: the client-to-broker direction cut into whole MQTT packets, each passed
// through a PacketStep that forwards it unchanged, rewrites it, drops it, or closes the
// connection with a reason code. Used only when a step has work to do (today: MQTT 5 clients
// whose PUBLISH user properties are stripped or stamped); otherwise bytes stream untouched.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mqtt/framer.h"
#include "mqtt/publish.h"

namespace mqtls::net {

enum class StepAction : std::uint8_t { Forward, Replace, Drop, Close };

struct StepResult {
  StepAction action = StepAction::Forward;
  std::vector<std::uint8_t> bytes;  // Replace: the packet to send instead
  std::uint8_t reason_code = 0;     // Close: MQTT 5 DISCONNECT reason code
  std::string detail;               // Close: for the log (no payload bytes)
};

class PacketStep {
 public:
  virtual ~PacketStep() = default;
  // True when the step wants to see packets of this type; others are forwarded without a copy.
  virtual bool wants(mqtt::PacketType type) const = 0;
  // `packet` is one complete frame (fixed header included).
  virtual StepResult onPacket(const mqtt::FrameResult& frame,
                              std::span<const std::uint8_t> packet) = 0;
};

// MQTT 5 PUBLISH from the client: removes forged identity user properties and appends the
// certificate identity (mqtt::rewritePublishV5). A malformed PUBLISH closes with 0x81, one that
// would grow past the limit with 0x95.
class PublishStamper final : public PacketStep {
 public:
  PublishStamper(mqtt::PublishStamp stamp, std::uint32_t max_packet_size)
      : stamp_(std::move(stamp)), max_packet_size_(max_packet_size) {}
  bool wants(mqtt::PacketType type) const override { return type == mqtt::PacketType::Publish; }
  StepResult onPacket(const mqtt::FrameResult& frame,
                      std::span<const std::uint8_t> packet) override;

 private:
  mqtt::PublishStamp stamp_;
  std::uint32_t max_packet_size_;
};

// Forwards every packet unchanged through the framed path (for measuring its cost, and for
// checking that every client packet is well framed).
class FramingOnlyStep final : public PacketStep {
 public:
  bool wants(mqtt::PacketType) const override { return false; }
  StepResult onPacket(const mqtt::FrameResult&, std::span<const std::uint8_t>) override {
    return {};
  }
};

}  // namespace mqtls::net

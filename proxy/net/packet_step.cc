#include "net/packet_step.h"

namespace mqtls::net {
namespace {

constexpr std::uint8_t kMalformedPacket = 0x81;
constexpr std::uint8_t kPacketTooLarge = 0x95;

}  // namespace

StepResult PublishStamper::onPacket(const mqtt::FrameResult&,
                                    std::span<const std::uint8_t> packet) {
  auto rewrite = mqtt::rewritePublishV5(packet, stamp_, max_packet_size_);
  StepResult result;
  switch (rewrite.status) {
    case mqtt::PublishRewriteStatus::Unchanged:
      result.action = StepAction::Forward;
      break;
    case mqtt::PublishRewriteStatus::Rewritten:
      result.action = StepAction::Replace;
      result.bytes = std::move(rewrite.bytes);
      break;
    case mqtt::PublishRewriteStatus::Malformed:
      result.action = StepAction::Close;
      result.reason_code = kMalformedPacket;
      result.detail = "malformed PUBLISH: " + rewrite.detail;
      break;
    case mqtt::PublishRewriteStatus::TooLarge:
      result.action = StepAction::Close;
      result.reason_code = kPacketTooLarge;
      result.detail = "PUBLISH with identity properties exceeds the packet size limit";
      break;
  }
  return result;
}

}  // namespace mqtls::net

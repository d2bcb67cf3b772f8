// libFuzzer entry point for the MQTT codec. Any input must leave the codec well-behaved: no
// out-of-bounds access, and every packet it accepts must survive encode/decode unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <span>

#include "mqtt/connect.h"
#include "mqtt/framer.h"
#include "mqtt/replies.h"

namespace {

using namespace mqtls::mqtt;

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "codec invariant violated: %s\n", what);
    std::abort();
  }
}

// peekFrame must be consistent whatever the limit.
void checkFrame(std::span<const std::uint8_t> input, std::size_t limit) {
  const FrameResult frame = peekFrame(input, limit);
  if (frame.status == FrameStatus::Frame) {
    check(frame.header_size >= 2 && frame.header_size <= 5, "frame header size");
    check(frame.totalSize() <= input.size(), "frame beyond the buffer");
    check(frame.totalSize() <= limit, "frame beyond the limit");
    check(frame.type != PacketType::Reserved, "frame of reserved type");
  } else if (frame.status == FrameStatus::Error && frame.error == FrameError::TooLarge) {
    check(frame.totalSize() > limit, "TooLarge within the limit");
  } else if (frame.status == FrameStatus::NeedMore) {
    check(input.size() < 5 || frame.header_size != 0, "NeedMore with a complete header");
  }
}

void checkConnect(std::span<const std::uint8_t> packet) {
  const ConnectDecodeResult decoded = decodeConnect(packet);
  if (!decoded.ok()) {
    if (decoded.error.level) {
      (void)encodeRefusal(*decoded.error.level, decoded.error.refusal, decoded.error.detail, 64);
    }
    return;
  }
  const auto encoded = encodeConnect(*decoded.packet);
  check(encoded.has_value(), "decoded CONNECT does not encode");
  check(encoded->size() <= packet.size(), "re-encoded CONNECT grew");
  const ConnectDecodeResult again = decodeConnect(*encoded);
  check(again.ok(), "re-encoded CONNECT does not decode");
  check(*again.packet == *decoded.packet, "CONNECT changed through encode/decode");
  check(encodeConnect(*again.packet) == encoded, "CONNECT encoding is not stable");
  (void)decoded.packet->properties.userProperties();
}

void checkConnack(std::span<const std::uint8_t> packet) {
  for (ProtocolLevel level : {ProtocolLevel::V311, ProtocolLevel::V5}) {
    auto decoded = decodeConnack(level, packet);
    if (!decoded) {
      continue;
    }
    const auto encoded = encodeConnack(level, *decoded);
    check(!encoded.empty(), "decoded CONNACK does not encode");
    const auto again = decodeConnack(level, encoded);
    check(again.has_value() && *again == *decoded, "CONNACK changed through encode/decode");
    if (level == ProtocolLevel::V5 &&
        decoded->properties.find(property::kAssignedClientIdentifier) == nullptr) {
      decoded->properties.addString(property::kAssignedClientIdentifier, "assigned");
      const auto edited = decodeConnack(level, encodeConnack(level, *decoded));
      check(edited.has_value() && *edited == *decoded, "edited CONNACK does not decode");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  for (std::size_t limit : {std::size_t{0}, std::size_t{2}, std::size_t{64}, std::size_t{1024},
                            std::size_t{268'435'460}, std::numeric_limits<std::size_t>::max()}) {
    checkFrame(input, limit);
  }
  const FrameResult frame = peekFrame(input, std::numeric_limits<std::size_t>::max());
  if (frame.status == FrameStatus::Frame) {
    const auto packet = input.first(frame.totalSize());
    if (frame.type == PacketType::Connect) {
      checkConnect(packet);
    } else if (frame.type == PacketType::Connack) {
      checkConnack(packet);
    }
  }
  // The whole input, whatever its framing, must be refused or accepted without harm.
  (void)decodeConnect(input);
  (void)decodeConnack(ProtocolLevel::V5, input);
  return 0;
}

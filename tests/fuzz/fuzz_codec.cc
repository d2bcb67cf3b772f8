// libFuzzer entry point for the MQTT codec. Any input must leave the codec well-behaved: no
// out-of-bounds access, every packet it accepts must survive encode/decode unchanged, and every
// PUBLISH it rewrites must be accepted again and rewrite to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <span>

#include "mqtt/connect.h"
#include "mqtt/framer.h"
#include "mqtt/publish.h"
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

// rewritePublishV5 must agree with itself whatever the stamp and limit, and what it writes must
// be a PUBLISH it accepts again and rewrites to the same bytes.
void checkPublish(std::span<const std::uint8_t> packet) {
  const PublishStamp identity{{"x-cert-cn", "x-a"}, {{"x-cert-cn", "device-001"}, {"x-a", ""}}};
  const PublishStamp strip_only{{"x-cert-cn", "x-a"}, {}};
  const bool malformed =
      rewritePublishV5(packet, PublishStamp{}, 0).status == PublishRewriteStatus::Malformed;
  for (std::uint32_t limit : {0u, 16u, 64u}) {
    const PublishRewrite result = rewritePublishV5(packet, identity, limit);
    check((result.status == PublishRewriteStatus::Malformed) == malformed,
          "verdict depends on stamp");
    check(result.status != PublishRewriteStatus::Unchanged, "stamp with additions left unchanged");
    check(limit != 0 || result.status != PublishRewriteStatus::TooLarge, "TooLarge without limit");
    if (result.status != PublishRewriteStatus::Rewritten) {
      check(result.bytes.empty(), "bytes without a rewrite");
      continue;
    }
    const FrameResult frame = peekFrame(result.bytes, std::numeric_limits<std::size_t>::max());
    check(frame.status == FrameStatus::Frame && frame.totalSize() == result.bytes.size(),
          "rewritten PUBLISH does not frame");
    check(frame.type == PacketType::Publish, "rewritten packet is not a PUBLISH");
    check(limit == 0 || result.bytes.size() <= limit, "rewritten PUBLISH over the limit");
    const PublishRewrite again = rewritePublishV5(result.bytes, identity, limit);
    check(again.status == PublishRewriteStatus::Rewritten && again.bytes == result.bytes,
          "PUBLISH rewrite is not stable");
  }
  const PublishRewrite stripped = rewritePublishV5(packet, strip_only, 0);
  if (stripped.status == PublishRewriteStatus::Rewritten) {
    check(stripped.bytes.size() < packet.size(), "stripping grew the PUBLISH");
  }
}

}  // namespace

// The codec's verdict on a whole input, for the committed corpus: true when the input is one or
// more complete frames and every frame the codec decodes decodes (CONNECT; CONNACK at 3.1.1 or
// 5.0; PUBLISH as MQTT 5 unless an earlier CONNECT in the input gave another level).
bool mqtlsCodecAccepts(std::span<const std::uint8_t> input) {
  std::optional<ProtocolLevel> level;
  if (input.empty()) {
    return false;
  }
  while (!input.empty()) {
    const FrameResult frame = peekFrame(input, std::numeric_limits<std::size_t>::max());
    if (frame.status != FrameStatus::Frame) {
      return false;
    }
    const auto packet = input.first(frame.totalSize());
    if (frame.type == PacketType::Connect) {
      const ConnectDecodeResult decoded = decodeConnect(packet);
      if (!decoded.ok()) {
        return false;
      }
      level = decoded.packet->level;
    } else if (frame.type == PacketType::Connack) {
      if (!decodeConnack(ProtocolLevel::V5, packet) &&
          !decodeConnack(ProtocolLevel::V311, packet)) {
        return false;
      }
    } else if (frame.type == PacketType::Publish &&
               level.value_or(ProtocolLevel::V5) == ProtocolLevel::V5) {
      if (rewritePublishV5(packet, {}, 0).status == PublishRewriteStatus::Malformed) {
        return false;
      }
    }
    input = input.subspan(frame.totalSize());
  }
  return true;
}

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
    } else if (frame.type == PacketType::Publish) {
      checkPublish(packet);
    }
  }
  // The whole input, whatever its framing, must be refused or accepted without harm.
  (void)decodeConnect(input);
  (void)decodeConnack(ProtocolLevel::V5, input);
  return 0;
}

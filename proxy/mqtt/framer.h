// Framing: finds the boundaries of MQTT packets in a byte stream without decoding them.
// Pure and incremental: the caller passes whatever prefix of the stream it has buffered, and gets
// NeedMore, a complete Frame (type, flags, sizes), or an Error. Bounds-checked, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "mqtt/packet.h"

namespace mqtls::mqtt {

enum class FrameStatus : std::uint8_t {
  NeedMore,  // the buffered bytes are a valid but incomplete prefix of a packet
  Frame,     // a whole packet is buffered: see header_size / remaining_length
  Error,     // the stream is not MQTT (see FrameError); close the connection
};

enum class FrameError : std::uint8_t {
  None,
  MalformedLength,  // Remaining Length varint longer than 4 bytes, or non-minimal 5th byte
  TooLarge,         // Remaining Length exceeds the caller's limit
  ReservedType,     // packet type 0
};

struct FrameResult {
  FrameStatus status = FrameStatus::NeedMore;
  FrameError error = FrameError::None;
  PacketType type = PacketType::Reserved;
  std::uint8_t flags = 0;  // low nibble of the first byte
  // Both sizes are valid for Frame and TooLarge, and for NeedMore once the fixed header is
  // complete (header_size != 0): then only the body is still arriving.
  std::size_t header_size = 0;  // 1 + varint bytes
  std::uint32_t remaining_length = 0;
  std::size_t totalSize() const { return header_size + remaining_length; }
};

// Examines the start of `buffered`. `max_packet_size` bounds the whole packet (fixed header
// included); a packet larger than that is FrameError::TooLarge as soon as its length is known,
// before its body arrives. ReservedType is reported from the first byte alone. Flags are reported,
// not validated. Never reads past buffered.size().
FrameResult peekFrame(std::span<const std::uint8_t> buffered, std::size_t max_packet_size);

std::string_view frameErrorName(FrameError error);

// Encodes a Remaining Length varint into out (at least 4 bytes). Returns bytes written, or 0 if
// value > kMaxRemainingLength.
std::size_t encodeRemainingLength(std::uint32_t value, std::uint8_t* out);

}  // namespace mqtls::mqtt

#include "mqtt/framer.h"

#include "mqtt/writer.h"

namespace mqtls::mqtt {

// The fixed header is examined as soon as its bytes are there: the type (and ReservedType) from
// the first byte, then the Remaining Length varint, then the size limit, so that a stream that
// cannot be MQTT, or a packet that is too large, is rejected before its body is buffered.
FrameResult peekFrame(std::span<const std::uint8_t> buffered, std::size_t max_packet_size) {
  FrameResult result;
  if (buffered.empty()) {
    return result;
  }
  result.type = static_cast<PacketType>(buffered[0] >> 4);
  result.flags = buffered[0] & 0x0F;
  if (result.type == PacketType::Reserved) {
    result.status = FrameStatus::Error;
    result.error = FrameError::ReservedType;
    return result;
  }
  std::uint32_t length = 0;
  std::size_t varint_bytes = 0;
  for (;;) {
    if (varint_bytes == 4) {
      result.status = FrameStatus::Error;
      result.error = FrameError::MalformedLength;
      return result;
    }
    if (buffered.size() < 2 + varint_bytes) {
      return result;  // NeedMore: the varint is still arriving
    }
    const std::uint8_t byte = buffered[1 + varint_bytes];
    length |= std::uint32_t{byte & 0x7Fu} << (7 * varint_bytes);
    ++varint_bytes;
    if ((byte & 0x80) == 0) {
      break;
    }
  }
  result.header_size = 1 + varint_bytes;
  result.remaining_length = length;
  if (max_packet_size < result.header_size ||
      result.remaining_length > max_packet_size - result.header_size) {
    result.status = FrameStatus::Error;
    result.error = FrameError::TooLarge;
    return result;
  }
  if (buffered.size() >= result.totalSize()) {
    result.status = FrameStatus::Frame;
  }
  return result;
}

std::string_view frameErrorName(FrameError error) {
  switch (error) {
    case FrameError::None:
      return "none";
    case FrameError::MalformedLength:
      return "malformed_length";
    case FrameError::TooLarge:
      return "too_large";
    case FrameError::ReservedType:
      return "reserved_type";
  }
  return "unknown";
}

std::size_t encodeRemainingLength(std::uint32_t value, std::uint8_t* out) {
  return value > kMaxRemainingLength ? 0 : detail::encodeVarint(value, out);
}

}  // namespace mqtls::mqtt

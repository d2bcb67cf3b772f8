// Appending writer for packets the codec builds. Internal to the codec. Callers check field and
// packet size limits before writing; the writer itself only appends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace mqtls::mqtt::detail {

// Bytes a Variable Byte Integer of this value occupies in minimal form (values above
// kMaxRemainingLength are the caller's error and report 4).
inline std::size_t varintSize(std::uint32_t value) {
  if (value < 128) {
    return 1;
  }
  if (value < 16'384) {
    return 2;
  }
  if (value < 2'097'152) {
    return 3;
  }
  return 4;
}

// Writes `value` as a minimal Variable Byte Integer into out[0..3]; returns the bytes written.
// Precondition: value <= kMaxRemainingLength (268,435,455).
inline std::size_t encodeVarint(std::uint32_t value, std::uint8_t* out) {
  std::size_t written = 0;
  do {
    std::uint8_t byte = value & 0x7F;
    value >>= 7;
    if (value != 0) {
      byte |= 0x80;
    }
    out[written++] = byte;
  } while (value != 0);
  return written;
}

// Appends to a byte container: std::vector<std::uint8_t> for packets, std::string for the raw
// values of properties.
template <typename Buffer>
class BasicWriter {
 public:
  explicit BasicWriter(Buffer& out) : out_(out) {}

  void u8(std::uint8_t value) { out_.push_back(static_cast<typename Buffer::value_type>(value)); }

  void u16(std::uint16_t value) {
    u8(static_cast<std::uint8_t>(value >> 8));
    u8(static_cast<std::uint8_t>(value & 0xFF));
  }

  // Minimal Variable Byte Integer. Precondition: value <= kMaxRemainingLength.
  void varint(std::uint32_t value) {
    std::uint8_t encoded[4];
    const std::size_t size = encodeVarint(value, encoded);
    for (std::size_t i = 0; i < size; ++i) {
      u8(encoded[i]);
    }
  }

  void bytes(std::string_view data) { out_.insert(out_.end(), data.begin(), data.end()); }
  void bytes(std::span<const std::uint8_t> data) {
    out_.insert(out_.end(), data.begin(), data.end());
  }

  // Two-byte length prefix and the bytes. Precondition: data.size() <= 65,535.
  void lengthPrefixed(std::string_view data) {
    u16(static_cast<std::uint16_t>(data.size()));
    bytes(data);
  }

 private:
  Buffer& out_;
};

using Writer = BasicWriter<std::vector<std::uint8_t>>;

}  // namespace mqtls::mqtt::detail

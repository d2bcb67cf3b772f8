// Appending writer for packets the codec builds. Internal to the codec. Callers check field and
// packet size limits before writing; the writer itself only appends.
#pragma once

#include <cstddef>
#include <cstdint>
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

class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}

  void u8(std::uint8_t value) { out_.push_back(value); }

  void u16(std::uint16_t value) {
    out_.push_back(static_cast<std::uint8_t>(value >> 8));
    out_.push_back(static_cast<std::uint8_t>(value & 0xFF));
  }

  // Minimal Variable Byte Integer. Precondition: value <= kMaxRemainingLength.
  void varint(std::uint32_t value) {
    do {
      std::uint8_t byte = value & 0x7F;
      value >>= 7;
      if (value != 0) {
        byte |= 0x80;
      }
      out_.push_back(byte);
    } while (value != 0);
  }

  void bytes(std::string_view data) { out_.insert(out_.end(), data.begin(), data.end()); }

  // Two-byte length prefix and the bytes. Precondition: data.size() <= 65,535.
  void lengthPrefixed(std::string_view data) {
    u16(static_cast<std::uint16_t>(data.size()));
    bytes(data);
  }

 private:
  std::vector<std::uint8_t>& out_;
};

}  // namespace mqtls::mqtt::detail

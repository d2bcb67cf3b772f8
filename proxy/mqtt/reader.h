// Bounds-checked cursor over untrusted MQTT bytes, and MQTT UTF-8 string reads. Internal to
// the codec. Every read either succeeds completely or returns false and leaves the cursor where
// it was; nothing ever reads past the end of the span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "util/utf8.h"

namespace mqtls::mqtt::detail {

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return bytes_.size() - pos_; }
  bool atEnd() const { return pos_ == bytes_.size(); }

  // The bytes between an earlier position() and the current one.
  std::span<const std::uint8_t> since(std::size_t from) const {
    return bytes_.subspan(from, pos_ - from);
  }

  bool readU8(std::uint8_t& out) {
    if (remaining() < 1) {
      return false;
    }
    out = bytes_[pos_++];
    return true;
  }

  bool readU16(std::uint16_t& out) {
    if (remaining() < 2) {
      return false;
    }
    out = static_cast<std::uint16_t>((bytes_[pos_] << 8) | bytes_[pos_ + 1]);
    pos_ += 2;
    return true;
  }

  bool readU32(std::uint32_t& out) {
    if (remaining() < 4) {
      return false;
    }
    out = (std::uint32_t{bytes_[pos_]} << 24) | (std::uint32_t{bytes_[pos_ + 1]} << 16) |
          (std::uint32_t{bytes_[pos_ + 2]} << 8) | std::uint32_t{bytes_[pos_ + 3]};
    pos_ += 4;
    return true;
  }

  // Variable Byte Integer of one to four bytes (non-minimal forms accepted). False when the
  // bytes run out or a fifth byte would be needed.
  bool readVarint(std::uint32_t& out) {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      if (remaining() <= i) {
        return false;
      }
      const std::uint8_t byte = bytes_[pos_ + i];
      value |= std::uint32_t{byte & 0x7Fu} << (7 * i);
      if ((byte & 0x80) == 0) {
        pos_ += i + 1;
        out = value;
        return true;
      }
    }
    return false;
  }

  bool readSpan(std::size_t count, std::span<const std::uint8_t>& out) {
    if (remaining() < count) {
      return false;
    }
    out = bytes_.subspan(pos_, count);
    pos_ += count;
    return true;
  }

  // Two-byte length followed by that many bytes, returned as a view (no copy).
  bool readPrefixed(std::span<const std::uint8_t>& out) {
    const std::size_t start = pos_;
    std::uint16_t length = 0;
    if (!readU16(length) || !readSpan(length, out)) {
      pos_ = start;
      return false;
    }
    return true;
  }

  // Two-byte length followed by that many bytes (MQTT Binary Data, or a string not yet checked).
  bool readBinary(std::string& out) {
    std::span<const std::uint8_t> body;
    if (!readPrefixed(body)) {
      return false;
    }
    out.assign(body.begin(), body.end());
    return true;
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

// Splits one complete packet into its first byte and its body. False unless the Remaining Length
// varint is well-formed and `frame` is exactly the fixed header plus Remaining Length bytes.
inline bool splitFrame(std::span<const std::uint8_t> frame, std::uint8_t& first,
                       std::span<const std::uint8_t>& body) {
  Reader reader(frame);
  std::uint32_t length = 0;
  if (!reader.readU8(first) || !reader.readVarint(length) || reader.remaining() != length) {
    return false;
  }
  return reader.readSpan(length, body);
}

enum class StringRead : std::uint8_t { Ok, Truncated, BadUtf8 };

// A length-prefixed MQTT UTF-8 string. On BadUtf8 the bytes are consumed but `out` is unusable.
inline StringRead readUtf8(Reader& reader, std::string& out) {
  if (!reader.readBinary(out)) {
    return StringRead::Truncated;
  }
  return utf8::isValid(out, utf8::kMqtt) ? StringRead::Ok : StringRead::BadUtf8;
}

// The bytes of `field` as text, for UTF-8 checks and comparisons without a copy.
inline std::string_view asText(std::span<const std::uint8_t> field) {
  return {reinterpret_cast<const char*>(field.data()), field.size()};
}

}  // namespace mqtls::mqtt::detail

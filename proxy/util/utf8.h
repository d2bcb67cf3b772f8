// The one strict UTF-8 validator (RFC 3629) and the rules its callers layer on top: MQTT strings
// (no U+0000) and certificate values (no control characters at all). Header-only, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mqtls::utf8 {

struct Rules {
  bool allow_nul = false;      // U+0000
  bool allow_controls = true;  // C0 (U+0001..U+001F), DEL (U+007F) and C1 (U+0080..U+009F)
};

// MQTT UTF-8 string fields: U+0000 is forbidden, other control characters are allowed
// (3.1.1 §1.5.3, 5.0 §1.5.4).
inline constexpr Rules kMqtt{.allow_nul = false, .allow_controls = true};
// Values taken from a certificate (names, DNs): no NUL and no control characters of any kind,
// so nothing can be smuggled into a user name, a log line or a broker ACL.
inline constexpr Rules kCertificate{.allow_nul = false, .allow_controls = false};

namespace detail {

inline bool isControl(std::uint32_t code) {
  return (code >= 0x01 && code <= 0x1F) || (code >= 0x7F && code <= 0x9F);
}

// Decodes the sequence starting at text[i]; returns its length, or 0 when it is not well-formed
// (overlong form, surrogate, above U+10FFFF, truncated, stray continuation or 0xF8..0xFF lead).
inline std::size_t decode(std::string_view text, std::size_t i, std::uint32_t& code) {
  const auto lead = static_cast<std::uint8_t>(text[i]);
  std::size_t extra = 0;
  std::uint32_t min = 0;
  if (lead < 0x80) {
    code = lead;
    return 1;
  }
  if ((lead & 0xE0) == 0xC0) {
    extra = 1, min = 0x80, code = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    extra = 2, min = 0x800, code = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    extra = 3, min = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() - i <= extra) {
    return 0;
  }
  for (std::size_t k = 1; k <= extra; ++k) {
    const auto next = static_cast<std::uint8_t>(text[i + k]);
    if ((next & 0xC0) != 0x80) {
      return 0;
    }
    code = (code << 6) | (next & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
    return 0;
  }
  return extra + 1;
}

}  // namespace detail

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF) and holds no character `rules` forbid. Never reads outside `text`.
inline bool isValid(std::string_view text, Rules rules) {
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t code = 0;
    const std::size_t length = detail::decode(text, i, code);
    if (length == 0 || (code == 0 && !rules.allow_nul) ||
        (!rules.allow_controls && detail::isControl(code))) {
      return false;
    }
    i += length;
  }
  return true;
}

}  // namespace mqtls::utf8

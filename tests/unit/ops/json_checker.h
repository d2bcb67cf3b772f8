// A strict JSON reader for tests: accepts exactly one JSON object (RFC 8259) with unique keys and
// strings of well-formed UTF-8, and returns its top-level string members decoded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mqtls::testing {

class JsonChecker {
 public:
  using Members = std::map<std::string, std::string>;  // top-level strings; others as "<value>"

  // The object's members, or nullopt (with why() set) if `text` is anything else.
  static std::optional<Members> object(std::string_view text, std::string* why = nullptr) {
    JsonChecker checker(text);
    Members members;
    checker.space();
    bool ok = checker.parseObject(&members);
    checker.space();
    ok = ok && checker.at_ == text.size();
    if (!ok && why != nullptr) {
      *why = "invalid JSON near byte " + std::to_string(checker.at_);
    }
    return ok ? std::optional<Members>(members) : std::nullopt;
  }

 private:
  explicit JsonChecker(std::string_view text) : s_(text) {}

  bool more() const { return at_ < s_.size(); }
  char peek() const { return more() ? s_[at_] : '\0'; }
  bool take(char c) {
    if (peek() != c || !more()) {
      return false;
    }
    ++at_;
    return true;
  }
  void space() {
    while (more() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++at_;
    }
  }
  bool literal(std::string_view word) {
    if (s_.substr(at_, word.size()) != word) {
      return false;
    }
    at_ += word.size();
    return true;
  }

  bool parseObject(Members* members) {
    if (!take('{')) {
      return false;
    }
    space();
    if (take('}')) {
      return true;
    }
    Members seen;
    do {
      space();
      std::string key;
      if (!parseString(&key) || seen.count(key) != 0) {
        return false;  // duplicate keys are refused: a log line must not be ambiguous
      }
      space();
      if (!take(':')) {
        return false;
      }
      space();
      std::string value = "<value>";
      if (peek() == '"' ? !parseString(&value) : !parseValue()) {
        return false;
      }
      seen[key] = value;
      space();
    } while (take(','));
    if (members != nullptr) {
      *members = seen;
    }
    return take('}');
  }

  bool parseArray() {
    take('[');
    space();
    if (take(']')) {
      return true;
    }
    do {
      space();
      if (!parseValue()) {
        return false;
      }
      space();
    } while (take(','));
    return take(']');
  }

  bool parseValue() {
    switch (peek()) {
      case '{':
        return parseObject(nullptr);
      case '[':
        return parseArray();
      case '"':
        return parseString(nullptr);
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return parseNumber();
    }
  }

  bool digits() {
    const std::size_t start = at_;
    while (peek() >= '0' && peek() <= '9') {
      ++at_;
    }
    return at_ > start;
  }

  bool parseNumber() {
    take('-');
    if (take('0')) {
      // no leading zeros
    } else if (peek() < '1' || peek() > '9' || !digits()) {
      return false;
    }
    if (take('.') && !digits()) {
      return false;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++at_;
      if (!take('+')) {
        take('-');
      }
      return digits();
    }
    return true;
  }

  bool hex4(std::uint32_t& out) {
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = peek();
      const int v = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (v < 0) {
        return false;
      }
      out = out * 16 + static_cast<std::uint32_t>(v);
      ++at_;
    }
    return true;
  }

  static void appendUtf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool parseEscape(std::string& out) {
    const char c = peek();
    ++at_;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out += c;
        return true;
      case 'b':
        out += '\b';
        return true;
      case 'f':
        out += '\f';
        return true;
      case 'n':
        out += '\n';
        return true;
      case 'r':
        out += '\r';
        return true;
      case 't':
        out += '\t';
        return true;
      case 'u': {
        std::uint32_t cp = 0;
        if (!hex4(cp)) {
          return false;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair, both halves escaped
          std::uint32_t low = 0;
          if (!literal("\\u") || !hex4(low) || low < 0xDC00 || low > 0xDFFF) {
            return false;
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return false;
        }
        appendUtf8(out, cp);
        return true;
      }
      default:
        return false;
    }
  }

  // One well-formed UTF-8 sequence of 2 to 4 bytes (no overlongs, surrogates, > U+10FFFF).
  bool utf8(std::string& out) {
    const auto b = [&](std::size_t k) {
      return at_ + k < s_.size() ? static_cast<unsigned char>(s_[at_ + k]) : 0;
    };
    const unsigned char lead = b(0);
    std::size_t n = lead >= 0xC2 && lead <= 0xDF   ? 2
                    : lead >= 0xE0 && lead <= 0xEF ? 3
                    : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                   : 0;
    if (n == 0) {
      return false;
    }
    const unsigned char low = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
    const unsigned char high = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
    if (b(1) < low || b(1) > high) {
      return false;
    }
    for (std::size_t k = 2; k < n; ++k) {
      if ((b(k) & 0xC0) != 0x80) {
        return false;
      }
    }
    out.append(s_.substr(at_, n));
    at_ += n;
    return true;
  }

  bool parseString(std::string* value) {
    if (!take('"')) {
      return false;
    }
    std::string out;
    while (more()) {
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++at_;
        if (value != nullptr) {
          *value = out;
        }
        return true;
      }
      if (c < 0x20) {
        return false;  // raw control characters are not allowed in JSON strings
      }
      if (c == '\\') {
        ++at_;
        if (!parseEscape(out)) {
          return false;
        }
      } else if (c >= 0x80) {
        if (!utf8(out)) {
          return false;
        }
      } else {
        out += static_cast<char>(c);
        ++at_;
      }
    }
    return false;
  }

  std::string_view s_;
  std::size_t at_ = 0;
};

}  // namespace mqtls::testing

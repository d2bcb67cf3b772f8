#include "ops/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>

namespace mqtls::ops {
namespace {

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%eZ %l %v";
bool g_json = false;  // set once by setupLogging before any worker starts

// The source file name logAccess gives its records. The JSON formatter recognises an access
// record by this pointer (never by what the message holds), and merges its fields, which
// logAccess built as a JSON object, into the line.
constexpr char kAccessSource[] = "mqtls-access-record";

// Formats every record as one JSON object: access records (see kAccessSource) are merged in;
// any other message, whatever bytes it holds, becomes the escaped "msg" field.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string payload(msg.payload.data(), msg.payload.size());
    const bool access = msg.source.filename == kAccessSource && payload.size() >= 2 &&
                        payload.front() == '{' && payload.back() == '}';
    auto seconds = std::chrono::system_clock::to_time_t(msg.time);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() %
        1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[64];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(millis));
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = "{\"time\":\"" + std::string(stamp) + "\",\"level\":\"" +
                       std::string(level.data(), level.size()) + "\",";
    if (access) {
      line += payload.substr(1);
    } else {
      line += "\"msg\":\"" + jsonEscape(payload) + "\"}";
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

void appendField(std::string& out, bool json, const char* key, const std::string& value) {
  if (json) {
    out += std::string(out.size() > 1 ? "," : "") + "\"" + key + "\":\"" + jsonEscape(value) + "\"";
  } else {
    // key=value, quoted when the value holds spaces or quotes, "-" when empty.
    std::string shown = value.empty() ? "-" : jsonEscape(value);
    if (shown.find_first_of(" \"=") != std::string::npos) {
      shown = "\"" + shown + "\"";
    }
    out += std::string(out.empty() ? "" : " ") + key + "=" + shown;
  }
}

void appendNumber(std::string& out, bool json, const char* key, const std::string& value) {
  if (json) {
    out += std::string(out.size() > 1 ? "," : "") + "\"" + key + "\":" + value;
  } else {
    out += std::string(out.empty() ? "" : " ") + key + "=" + value;
  }
}

// The length of the well-formed UTF-8 sequence starting at text[i] (a byte >= 0x80), or 0 if
// there is none: no overlong forms, no surrogates, nothing above U+10FFFF, nothing truncated.
std::size_t utf8SequenceLength(const std::string& text, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char lead = at(0);
  std::size_t length = 0;
  unsigned char low = 0x80;  // bounds of the second byte, narrowed for some lead bytes
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;
    high = lead == 0xED ? 0x9F : 0xBF;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;
    high = lead == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (i + length > text.size() || at(1) < low || at(1) > high) {
    return 0;
  }
  for (std::size_t k = 2; k < length; ++k) {
    if ((at(k) & 0xC0) != 0x80) {
      return 0;
    }
  }
  return length;
}

}  // namespace

std::string jsonEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t length = utf8SequenceLength(text, i);
      if (length == 0) {
        out += "\\ufffd";  // not UTF-8: the replacement character, one per bad byte
        ++i;
      } else if (length == 3 && c == 0xE2 && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
                 (static_cast<unsigned char>(text[i + 2]) & 0xFE) == 0xA8) {
        // U+2028 / U+2029 are valid in JSON but split lines for many readers: escape them.
        out += static_cast<unsigned char>(text[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
        i += 3;
      } else {
        out.append(text, i, length);
        i += length;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

std::unique_ptr<spdlog::formatter> makeJsonFormatter() {
  return std::make_unique<JsonFormatter>();
}

void setupLogging(const config::Logging& logging) {
  auto logger = spdlog::stderr_logger_mt("mqtls");
  g_json = logging.format == config::LogFormat::Json;
  if (g_json) {
    logger->set_formatter(makeJsonFormatter());
  } else {
    logger->set_formatter(
        std::make_unique<spdlog::pattern_formatter>(kTextPattern, spdlog::pattern_time_type::utc));
  }
  logger->set_level(spdlog::level::from_str(logging.level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

void logAccess(spdlog::logger& logger, const AccessRecord& r, bool json) {
  if (!logger.should_log(spdlog::level::info)) {
    return;  // not built at all when the level hides it (one line per connection)
  }
  std::string line = json ? "{" : "";
  auto field = [&](const char* key, const std::string& value) {
    appendField(line, json, key, value);
  };
  auto number = [&](const char* key, const std::string& value) {
    appendNumber(line, json, key, value);
  };
  field("event", "connection_closed");
  number("conn", std::to_string(r.id));
  field("listener", r.listener);
  number("generation", std::to_string(r.generation));
  field("peer", r.peer);
  field("identity", r.identity);
  field("client_id", r.client_id);
  number("mqtt", std::to_string(r.mqtt_level));
  field("tls", r.tls_version);
  field("cipher", r.cipher);
  field("sni", r.sni);
  number("resumed", r.resumed ? "true" : "false");
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.1f",
                std::isfinite(r.duration_ms) ? r.duration_ms : 0.0);  // "nan" is not JSON
  number("duration_ms", duration);
  number("bytes_in", std::to_string(r.bytes_from_client));
  number("bytes_out", std::to_string(r.bytes_from_broker));
  field("close", r.close_reason);
  field("detail", r.detail);
  if (json) {
    line += "}";
  }
  logger.log(spdlog::source_loc{kAccessSource, 1, ""}, spdlog::level::info, "{}", line);
}

void logAccess(const AccessRecord& r) {
  if (auto* logger = spdlog::default_logger_raw()) {
    logAccess(*logger, r, g_json);
  }
}

}  // namespace mqtls::ops

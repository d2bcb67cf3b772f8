#include "ops/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace mqtls::ops {
namespace {

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%eZ %l %v";
bool g_json = false;  // set once by setupLogging before any worker starts

// Formats every record as one JSON object. A payload that is itself a JSON object (an access
// record) is merged into it; anything else becomes the "msg" field.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string payload(msg.payload.data(), msg.payload.size());
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
    if (!payload.empty() && payload.front() == '{') {
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

void appendField(std::string& out, const char* key, const std::string& value) {
  if (g_json) {
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

void appendNumber(std::string& out, const char* key, const std::string& value) {
  if (g_json) {
    out += std::string(out.size() > 1 ? "," : "") + "\"" + key + "\":" + value;
  } else {
    out += std::string(out.empty() ? "" : " ") + key + "=" + value;
  }
}

}  // namespace

std::string jsonEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    // U+2028 / U+2029 are valid in JSON but split lines for many readers: escape them.
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(text[i + 2]) == 0xA8 ||
         static_cast<unsigned char>(text[i + 2]) == 0xA9)) {
      out += static_cast<unsigned char>(text[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
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
  }
  return out;
}

void setupLogging(const config::Logging& logging) {
  auto logger = spdlog::stderr_logger_mt("mqtls");
  g_json = logging.format == config::LogFormat::Json;
  if (g_json) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_formatter(
        std::make_unique<spdlog::pattern_formatter>(kTextPattern, spdlog::pattern_time_type::utc));
  }
  logger->set_level(spdlog::level::from_str(logging.level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

void logAccess(const AccessRecord& r) {
  std::string line = g_json ? "{" : "";
  appendField(line, "event", "connection_closed");
  appendNumber(line, "conn", std::to_string(r.id));
  appendField(line, "listener", r.listener);
  appendField(line, "peer", r.peer);
  appendField(line, "identity", r.identity);
  appendField(line, "client_id", r.client_id);
  appendNumber(line, "mqtt", std::to_string(r.mqtt_level));
  appendField(line, "tls", r.tls_version);
  appendField(line, "cipher", r.cipher);
  appendNumber(line, "resumed", r.resumed ? "true" : "false");
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.1f", r.duration_ms);
  appendNumber(line, "duration_ms", duration);
  appendNumber(line, "bytes_in", std::to_string(r.bytes_from_client));
  appendNumber(line, "bytes_out", std::to_string(r.bytes_from_broker));
  appendField(line, "close", r.close_reason);
  appendField(line, "detail", r.detail);
  if (g_json) {
    line += "}";
  }
  spdlog::info("{}", line);
}

}  // namespace mqtls::ops

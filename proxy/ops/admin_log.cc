#include "ops/admin_log.h"

#include <spdlog/spdlog.h>

#include <array>

namespace mqtls::ops {
namespace {

constexpr std::array<std::string_view, 7> kLevels = {"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};

std::optional<spdlog::level::level_enum> levelFromName(std::string_view name) {
  for (std::size_t i = 0; i < kLevels.size(); ++i) {
    if (kLevels[i] == name) {
      return static_cast<spdlog::level::level_enum>(i);  // spdlog's order: trace = 0 ... off = 6
    }
  }
  return std::nullopt;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) {
    return {};
  }
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

}  // namespace

std::string logLevel() {
  const auto level = spdlog::default_logger_raw()->level();
  const auto index = static_cast<std::size_t>(level);
  return index < kLevels.size() ? std::string(kLevels[index]) : "off";
}

bool setLogLevel(std::string_view level) {
  auto value = levelFromName(level);
  if (!value) {
    return false;
  }
  spdlog::default_logger_raw()->set_level(*value);
  return true;
}

std::string cycleLogLevel() {
  const std::string now = logLevel();
  const std::string next = now == "info" ? "debug" : now == "debug" ? "trace" : "info";
  setLogLevel(next);
  return next;
}

std::optional<std::string> parseLevelBody(std::string_view body) {
  body = trim(body);
  if (!body.empty() && body.front() == '{') {
    // One member, {"level": "<name>"}; anything else is refused rather than guessed at.
    if (body.back() != '}') {
      return std::nullopt;
    }
    std::string_view inner = trim(body.substr(1, body.size() - 2));
    constexpr std::string_view kKey = "\"level\"";
    if (inner.substr(0, kKey.size()) != kKey) {
      return std::nullopt;
    }
    inner = trim(inner.substr(kKey.size()));
    if (inner.empty() || inner.front() != ':') {
      return std::nullopt;
    }
    inner = trim(inner.substr(1));
    if (inner.size() < 2 || inner.front() != '"' || inner.back() != '"') {
      return std::nullopt;
    }
    body = inner.substr(1, inner.size() - 2);
  }
  if (!levelFromName(body)) {
    return std::nullopt;
  }
  return std::string(body);
}

}  // namespace mqtls::ops

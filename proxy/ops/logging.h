// Logging: spdlog configured once at startup, text or JSON lines on stderr, and the one access
// line written per connection when it closes. Nothing logged here carries passwords or payloads.
#pragma once

#include <cstdint>
#include <string>

#include "config/model.h"

namespace mqtls::ops {

// Installs the process-wide logger. Text lines look like
// "2026-01-01T00:00:00.000Z info message"; JSON lines are one object each.
void setupLogging(const config::Logging& logging);

// Everything known about one client connection when it closes.
struct AccessRecord {
  std::uint64_t id = 0;
  std::string listener;
  std::string peer;         // "ip:port"
  std::string identity;     // certificate identity used, empty if none
  std::string client_id;    // as forwarded to the broker
  int mqtt_level = 0;       // 3, 4, 5; 0 if no CONNECT was decoded
  std::string tls_version;  // empty if the handshake did not finish
  std::string cipher;
  bool resumed = false;
  double duration_ms = 0;
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_from_broker = 0;
  std::string close_reason;  // e.g. "client_closed", "handshake_failed"
  std::string detail;        // e.g. the verify error; never secrets
};

void logAccess(const AccessRecord& record);

// JSON string escaping (quotes not included), exposed for tests.
std::string jsonEscape(const std::string& text);

}  // namespace mqtls::ops

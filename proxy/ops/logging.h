// Logging: spdlog configured once at startup, text or JSON lines on stderr, and the one access
// line written per connection when it closes. Nothing logged here carries passwords or payloads.
#pragma once

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include <cstdint>
#include <memory>
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
  std::uint64_t generation = 0;  // reload generation of the listener's TLS context (0: start)
  std::string peer;              // "ip:port"
  std::string identity;          // certificate identity used, empty if none
  std::string client_id;         // as forwarded to the broker
  int mqtt_level = 0;            // 3, 4, 5; 0 if no CONNECT was decoded
  std::string tls_version;       // empty if the handshake did not finish
  std::string cipher;
  std::string sni;  // the server name the client asked for (SNI), empty if none
  bool resumed = false;
  double duration_ms = 0;
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_from_broker = 0;
  std::string close_reason;  // e.g. "client_closed", "handshake_failed"
  std::string detail;        // e.g. the verify error; never secrets
};

// Writes the record's access line to the process-wide logger, in its configured format.
void logAccess(const AccessRecord& record);
// As above, to `logger`, as a JSON object (for the JSON formatter) or as key=value text.
void logAccess(spdlog::logger& logger, const AccessRecord& record, bool json);

// The formatter of log.format json: every line is exactly one JSON object whatever the message
// holds (quotes, backslashes, control bytes, invalid UTF-8, a leading '{'); only logAccess's
// records are merged into it as fields, all other messages become its "msg" string.
std::unique_ptr<spdlog::formatter> makeJsonFormatter();

// JSON string escaping (quotes not included): control bytes, U+2028 and U+2029 as escapes, and
// every byte that is not part of well-formed UTF-8 as an escaped U+FFFD.
std::string jsonEscape(const std::string& text);

}  // namespace mqtls::ops

// CONNECT: full decode and re-encode for MQTT 3.1, 3.1.1 and 5.0 (will message and properties
// included). The only client packet the proxy rewrites; every later one is forwarded untouched.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt/packet.h"
#include "mqtt/properties.h"

namespace mqtls::mqtt {

struct Will {
  Properties properties;  // MQTT 5 only
  std::string topic;
  std::string payload;   // binary
  std::uint8_t qos = 0;  // 0..2
  bool retain = false;

  bool operator==(const Will&) const = default;
};

struct ConnectPacket {
  ProtocolLevel level = ProtocolLevel::V311;
  bool bridge = false;      // bit 0x80 of the level byte, passed through
  bool clean_start = true;  // Clean Session (3.x) / Clean Start (5.0)
  std::uint16_t keep_alive = 0;
  Properties properties;  // MQTT 5 only
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary

  bool operator==(const ConnectPacket&) const = default;
};

// Why a CONNECT frame could not be decoded, and what the client should be told.
struct ConnectError {
  Refusal refusal = Refusal::Malformed;
  // Level read from the packet if decoding got that far, so the caller can answer in a format
  // the client understands; std::nullopt means "unknown: close without CONNACK".
  std::optional<ProtocolLevel> level;
  std::string detail;  // human-readable, no payload bytes
};

struct ConnectDecodeResult {
  std::optional<ConnectPacket> packet;  // set on success
  ConnectError error;                   // meaningful when !packet
  bool ok() const { return packet.has_value(); }
};

// Decodes one complete CONNECT frame (fixed header included, exactly totalSize() bytes as found
// by peekFrame). Every error found once the protocol name and level are read carries that level
// in error.level, including fixed-header flags that are not 0 (Malformed). Checks: type 1 with
// flags 0, protocol name matches level ("MQIsdp"/3,
// "MQTT"/4,5; other levels -> UnsupportedVersion), reserved connect flag 0, will QoS <= 2, will
// flags zero without will, 3.x password without username refused, every length in bounds and the
// frame consumed exactly, strings UTF-8 without U+0000, v5 properties well-formed with only
// CONNECT-legal ids (authentication data without method is ProtocolError). Never reads out of
// bounds whatever the input.
ConnectDecodeResult decodeConnect(std::span<const std::uint8_t> frame);

// Encodes a CONNECT with flags and Remaining Length computed from the fields. Fails (nullopt)
// when a field exceeds 65,535 bytes or the packet exceeds kMaxRemainingLength (also for a will
// QoS above 2 or a level outside the enum). Properties are written for MQTT 5 only; property
// values are written as held, not re-validated.
std::optional<std::vector<std::uint8_t>> encodeConnect(const ConnectPacket& packet);

}  // namespace mqtls::mqtt

// MQTT vocabulary shared by the codec: packet types, protocol levels, limits and the refusal
// reasons the proxy can answer with. Pure data; nothing here does I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mqtls::mqtt {

// Largest Remaining Length the four-byte varint can carry (3.1.1 §2.2.3, 5.0 §1.5.5).
inline constexpr std::uint32_t kMaxRemainingLength = 268'435'455;
// Largest UTF-8 string or binary field (two-byte length prefix).
inline constexpr std::size_t kMaxFieldLength = 65'535;

enum class PacketType : std::uint8_t {
  Reserved = 0,
  Connect = 1,
  Connack = 2,
  Publish = 3,
  Puback = 4,
  Pubrec = 5,
  Pubrel = 6,
  Pubcomp = 7,
  Subscribe = 8,
  Suback = 9,
  Unsubscribe = 10,
  Unsuback = 11,
  Pingreq = 12,
  Pingresp = 13,
  Disconnect = 14,
  Auth = 15,
};

// Protocol level byte of CONNECT, with the bridge bit (0x80) masked off.
enum class ProtocolLevel : std::uint8_t {
  V31 = 3,   // MQTT 3.1, protocol name "MQIsdp"
  V311 = 4,  // MQTT 3.1.1, protocol name "MQTT"
  V5 = 5,    // MQTT 5.0, protocol name "MQTT"
};

// Why the proxy refuses a connection. One place, connackReasonCode(), maps these to the code
// each protocol level understands.
enum class Refusal : std::uint8_t {
  Malformed,           // v5 0x81; v3 closes without CONNACK
  ProtocolError,       // v5 0x82; v3 closes without CONNACK
  UnsupportedVersion,  // v3-format CONNACK 0x01 for any level
  IdentifierRejected,  // v5 0x85, v3 0x02
  ServerUnavailable,   // v5 0x88, v3 0x03
  BadCredentials,      // v5 0x86, v3 0x04
  NotAuthorized,       // v5 0x87, v3 0x05
  BadAuthMethod,       // v5 0x8C, v3 0x05
  PacketTooLarge,      // v5 0x95; v3 closes without CONNACK
};

std::string_view refusalName(Refusal refusal);

// MQTT 5 property identifiers the proxy names explicitly (5.0 §2.2.2.2).
namespace property {
inline constexpr std::uint8_t kPayloadFormatIndicator = 0x01;
inline constexpr std::uint8_t kMessageExpiryInterval = 0x02;
inline constexpr std::uint8_t kContentType = 0x03;
inline constexpr std::uint8_t kResponseTopic = 0x08;
inline constexpr std::uint8_t kCorrelationData = 0x09;
inline constexpr std::uint8_t kSessionExpiryInterval = 0x11;
inline constexpr std::uint8_t kAssignedClientIdentifier = 0x12;
inline constexpr std::uint8_t kAuthenticationMethod = 0x15;
inline constexpr std::uint8_t kAuthenticationData = 0x16;
inline constexpr std::uint8_t kRequestProblemInformation = 0x17;
inline constexpr std::uint8_t kWillDelayInterval = 0x18;
inline constexpr std::uint8_t kRequestResponseInformation = 0x19;
inline constexpr std::uint8_t kReasonString = 0x1F;
inline constexpr std::uint8_t kReceiveMaximum = 0x21;
inline constexpr std::uint8_t kTopicAliasMaximum = 0x22;
inline constexpr std::uint8_t kTopicAlias = 0x23;
inline constexpr std::uint8_t kUserProperty = 0x26;
inline constexpr std::uint8_t kMaximumPacketSize = 0x27;
}  // namespace property

}  // namespace mqtls::mqtt

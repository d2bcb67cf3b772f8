// Packets the proxy itself writes or edits: CONNACK (refusals, per protocol level), the broker's
// CONNACK when an Assigned Client Identifier must be added (MQTT 5), and MQTT 5 DISCONNECT.
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

// CONNACK return/reason code for a refusal at this level, or nullopt when the protocol says to
// close without a CONNACK (3.x malformed / protocol error / too large).
std::optional<std::uint8_t> connackReasonCode(ProtocolLevel level, Refusal refusal);

// A refusing CONNACK the client of this level understands, or an empty vector when the connection
// must close silently. MQTT 5 CONNACKs carry `reason_string` as property 0x1F unless empty or it
// would exceed `client_max_packet_size` (0 = no limit). UnsupportedVersion is always the 4-byte
// v3 CONNACK 0x01.
std::vector<std::uint8_t> encodeRefusal(ProtocolLevel level, Refusal refusal,
                                        std::string_view reason_string = {},
                                        std::uint32_t client_max_packet_size = 0);

struct ConnackPacket {
  bool session_present = false;
  std::uint8_t reason_code = 0;
  Properties properties;  // MQTT 5 only

  bool operator==(const ConnackPacket&) const = default;
};

// Decodes a complete CONNACK frame at this level. nullopt if malformed.
std::optional<ConnackPacket> decodeConnack(ProtocolLevel level,
                                           std::span<const std::uint8_t> frame);
// Encodes a CONNACK (properties written for MQTT 5 only, as held). Empty if the properties cannot
// fit in one packet.
std::vector<std::uint8_t> encodeConnack(ProtocolLevel level, const ConnackPacket& packet);

// Rewrites one complete MQTT 5 CONNACK frame from the broker so that it carries `client_id` as
// Assigned Client Identifier (0x12). Empty result: the frame must pass unchanged (it does not
// decode as an MQTT 5 CONNACK, its reason code is >= 0x80, it already holds 0x12, or client_id
// exceeds 65,535 bytes). When the result would exceed `client_max_packet_size` (0 = no limit),
// the Reason String and then the User Properties are dropped (5.0 §3.2.2.3.9, §3.2.2.3.10); if it
// still does not fit, that smallest form is returned anyway and the caller decides what to do.
std::vector<std::uint8_t> addAssignedClientId(std::span<const std::uint8_t> connack_frame,
                                              std::string_view client_id,
                                              std::uint32_t client_max_packet_size);

// An MQTT 5 DISCONNECT with this reason code and no properties (E0 02 rc 00).
std::vector<std::uint8_t> encodeDisconnect(std::uint8_t reason_code);

}  // namespace mqtls::mqtt

// Packets the proxy itself writes or edits: CONNACK (refusals, per protocol level) and the
// broker's CONNACK when an Assigned Client Identifier must be added (MQTT 5).
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

}  // namespace mqtls::mqtt

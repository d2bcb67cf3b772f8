// encodeConnect, kept apart from the decoder so each file reads on its own.
#include <cstdint>
#include <vector>

#include "mqtt/connect.h"
#include "mqtt/property_codec.h"
#include "mqtt/writer.h"

namespace mqtls::mqtt {
namespace {

using detail::varintSize;
using detail::Writer;

bool fieldFits(const std::string& field) {
  return field.size() <= kMaxFieldLength;
}

// Property Length varint plus the properties, or nullopt when the list cannot be encoded.
std::optional<std::uint64_t> propertiesSize(const Properties& properties) {
  const std::size_t body = properties.encodedBodySize();
  if (body > kMaxRemainingLength) {
    return std::nullopt;
  }
  return varintSize(static_cast<std::uint32_t>(body)) + body;
}

// Remaining Length of the encoded packet, or nullopt when a field or the whole does not fit.
std::optional<std::uint64_t> remainingLength(const ConnectPacket& packet) {
  const bool v5 = packet.level == ProtocolLevel::V5;
  std::uint64_t size = 2 + (packet.level == ProtocolLevel::V31 ? 6 : 4) + 1 + 1 + 2;
  if (v5) {
    const auto properties = propertiesSize(packet.properties);
    if (!properties) {
      return std::nullopt;
    }
    size += *properties;
  }
  if (!fieldFits(packet.client_id)) {
    return std::nullopt;
  }
  size += 2 + packet.client_id.size();
  if (packet.will) {
    if (packet.will->qos > 2 || !fieldFits(packet.will->topic) ||
        !fieldFits(packet.will->payload)) {
      return std::nullopt;
    }
    if (v5) {
      const auto properties = propertiesSize(packet.will->properties);
      if (!properties) {
        return std::nullopt;
      }
      size += *properties;
    }
    size += 2 + packet.will->topic.size() + 2 + packet.will->payload.size();
  }
  for (const auto* field : {&packet.username, &packet.password}) {
    if (*field) {
      if (!fieldFits(**field)) {
        return std::nullopt;
      }
      size += 2 + (*field)->size();
    }
  }
  if (size > kMaxRemainingLength) {
    return std::nullopt;
  }
  return size;
}

std::uint8_t connectFlags(const ConnectPacket& packet) {
  std::uint8_t flags = packet.clean_start ? 0x02 : 0x00;
  if (packet.will) {
    flags |= 0x04 | static_cast<std::uint8_t>(packet.will->qos << 3);
    flags |= packet.will->retain ? 0x20 : 0x00;
  }
  flags |= packet.password ? 0x40 : 0x00;
  flags |= packet.username ? 0x80 : 0x00;
  return flags;
}

bool knownLevel(ProtocolLevel level) {
  return level == ProtocolLevel::V31 || level == ProtocolLevel::V311 || level == ProtocolLevel::V5;
}

}  // namespace

std::optional<std::vector<std::uint8_t>> encodeConnect(const ConnectPacket& packet) {
  if (!knownLevel(packet.level)) {
    return std::nullopt;
  }
  const auto remaining = remainingLength(packet);
  if (!remaining) {
    return std::nullopt;
  }
  const bool v5 = packet.level == ProtocolLevel::V5;
  std::vector<std::uint8_t> out;
  out.reserve(1 + 4 + *remaining);
  Writer writer(out);
  writer.u8(0x10);
  writer.varint(static_cast<std::uint32_t>(*remaining));
  writer.lengthPrefixed(packet.level == ProtocolLevel::V31 ? "MQIsdp" : "MQTT");
  writer.u8(static_cast<std::uint8_t>(packet.level) | (packet.bridge ? 0x80 : 0x00));
  writer.u8(connectFlags(packet));
  writer.u16(packet.keep_alive);
  if (v5) {
    detail::writeProperties(writer, packet.properties);
  }
  writer.lengthPrefixed(packet.client_id);
  if (packet.will) {
    if (v5) {
      detail::writeProperties(writer, packet.will->properties);
    }
    writer.lengthPrefixed(packet.will->topic);
    writer.lengthPrefixed(packet.will->payload);
  }
  if (packet.username) {
    writer.lengthPrefixed(*packet.username);
  }
  if (packet.password) {
    writer.lengthPrefixed(*packet.password);
  }
  return out;
}

}  // namespace mqtls::mqtt

#include "mqtt/connect_peek.h"

#include <string_view>

#include "mqtt/reader.h"

namespace mqtls::mqtt {
namespace {

constexpr std::string_view kMqtt = "MQTT";
constexpr std::string_view kMqisdp = "MQIsdp";

ConnectLevelPeek unknown() {
  return {LevelPeek::Unknown, ProtocolLevel::V311};
}

// The level for this protocol name and level byte, or Unknown.
ConnectLevelPeek classify(std::string_view name, std::uint8_t level_byte) {
  const std::uint8_t number = level_byte & 0x7F;
  if (name == kMqisdp && number == 3) {
    return {LevelPeek::Known, ProtocolLevel::V31};
  }
  if (name == kMqtt && (number == 4 || number == 5)) {
    return {LevelPeek::Known, static_cast<ProtocolLevel>(number)};
  }
  return unknown();
}

}  // namespace

ConnectLevelPeek peekConnectLevel(std::span<const std::uint8_t> buffered, std::size_t header_size) {
  if (header_size < 2 || buffered.size() < header_size) {
    return {};
  }
  detail::Reader header(buffered.first(header_size));
  std::uint8_t first = 0;
  std::uint32_t remaining = 0;
  if (!header.readU8(first) || !header.readVarint(remaining) || !header.atEnd() ||
      (first >> 4) != static_cast<std::uint8_t>(PacketType::Connect)) {
    return unknown();
  }
  const std::span<const std::uint8_t> body = buffered.subspan(header_size);
  if (body.size() < 2) {
    return {};
  }
  const std::size_t name_length = (std::size_t{body[0]} << 8) | body[1];
  if ((name_length != kMqtt.size() && name_length != kMqisdp.size()) ||
      remaining < 2 + name_length + 1) {
    return unknown();
  }
  if (body.size() < 2 + name_length + 1) {
    return {};
  }
  return classify(detail::asText(body.subspan(2, name_length)), body[2 + name_length]);
}

std::uint32_t maximumPacketSize(const ConnectPacket& connect) {
  if (connect.level != ProtocolLevel::V5) {
    return 0;
  }
  const Property* item = connect.properties.find(property::kMaximumPacketSize);
  if (item == nullptr || item->raw.size() != 4) {
    return 0;
  }
  std::uint32_t value = 0;
  for (char byte : item->raw) {
    value = (value << 8) | static_cast<std::uint8_t>(byte);
  }
  return value;
}

}  // namespace mqtls::mqtt

#include "mqtt/replies.h"

#include "mqtt/property_codec.h"
#include "mqtt/reader.h"
#include "mqtt/writer.h"
#include "util/utf8.h"

namespace mqtls::mqtt {
namespace {

constexpr std::uint8_t kConnackFirstByte = 0x20;
constexpr std::uint8_t kUnacceptableProtocolVersion = 0x01;

std::optional<std::uint8_t> v5ReasonCode(Refusal refusal) {
  switch (refusal) {
    case Refusal::Malformed:
      return 0x81;
    case Refusal::ProtocolError:
      return 0x82;
    case Refusal::UnsupportedVersion:
      return kUnacceptableProtocolVersion;  // sent in the v3 format, see encodeRefusal
    case Refusal::IdentifierRejected:
      return 0x85;
    case Refusal::ServerUnavailable:
      return 0x88;
    case Refusal::BadCredentials:
      return 0x86;
    case Refusal::NotAuthorized:
      return 0x87;
    case Refusal::BadAuthMethod:
      return 0x8C;
    case Refusal::PacketTooLarge:
      return 0x95;
  }
  return std::nullopt;
}

std::optional<std::uint8_t> v3ReturnCode(Refusal refusal) {
  switch (refusal) {
    case Refusal::UnsupportedVersion:
      return kUnacceptableProtocolVersion;
    case Refusal::IdentifierRejected:
      return 0x02;
    case Refusal::ServerUnavailable:
      return 0x03;
    case Refusal::BadCredentials:
      return 0x04;
    case Refusal::NotAuthorized:
    case Refusal::BadAuthMethod:
      return 0x05;
    case Refusal::Malformed:
    case Refusal::ProtocolError:
    case Refusal::PacketTooLarge:
      return std::nullopt;
  }
  return std::nullopt;
}

std::vector<std::uint8_t> v3Connack(bool session_present, std::uint8_t code) {
  return {kConnackFirstByte, 0x02, static_cast<std::uint8_t>(session_present ? 0x01 : 0x00), code};
}

// Size of the whole MQTT 5 CONNACK carrying these properties.
std::size_t v5ConnackSize(const Properties& properties) {
  const std::size_t body = properties.encodedBodySize();
  const std::size_t remaining = 2 + detail::varintSize(static_cast<std::uint32_t>(body)) + body;
  return 1 + detail::varintSize(static_cast<std::uint32_t>(remaining)) + remaining;
}

}  // namespace

std::optional<std::uint8_t> connackReasonCode(ProtocolLevel level, Refusal refusal) {
  return level == ProtocolLevel::V5 ? v5ReasonCode(refusal) : v3ReturnCode(refusal);
}

std::vector<std::uint8_t> encodeRefusal(ProtocolLevel level, Refusal refusal,
                                        std::string_view reason_string,
                                        std::uint32_t client_max_packet_size) {
  const auto code = connackReasonCode(level, refusal);
  if (!code) {
    return {};
  }
  if (level != ProtocolLevel::V5 || refusal == Refusal::UnsupportedVersion) {
    return v3Connack(false, *code);
  }
  ConnackPacket connack;
  connack.reason_code = *code;
  if (!reason_string.empty() && utf8::isValid(reason_string, utf8::kMqtt)) {
    connack.properties.addString(property::kReasonString, reason_string);
    if (client_max_packet_size != 0 && v5ConnackSize(connack.properties) > client_max_packet_size) {
      connack.properties.items().clear();
    }
  }
  return encodeConnack(ProtocolLevel::V5, connack);
}

// v3: exactly acknowledge flags and return code, only bit 0 of the flags may be set. v5: the
// same two bytes, then a Property Length and CONNACK-legal properties filling the frame exactly.
std::optional<ConnackPacket> decodeConnack(ProtocolLevel level,
                                           std::span<const std::uint8_t> frame) {
  std::uint8_t first = 0;
  std::span<const std::uint8_t> body;
  if (!detail::splitFrame(frame, first, body) || first != kConnackFirstByte) {
    return std::nullopt;
  }
  detail::Reader reader(body);
  std::uint8_t flags = 0;
  ConnackPacket connack;
  if (!reader.readU8(flags) || !reader.readU8(connack.reason_code) || (flags & 0xFE) != 0) {
    return std::nullopt;
  }
  connack.session_present = (flags & 0x01) != 0;
  if (level == ProtocolLevel::V5 &&
      !detail::readProperties(reader, detail::kConnackPropertyIds, "CONNACK", connack.properties)
           .ok()) {
    return std::nullopt;
  }
  if (!reader.atEnd()) {
    return std::nullopt;
  }
  return connack;
}

// Properties are ignored below MQTT 5. Returns an empty vector if the properties cannot fit in
// one packet.
std::vector<std::uint8_t> encodeConnack(ProtocolLevel level, const ConnackPacket& packet) {
  if (level != ProtocolLevel::V5) {
    return v3Connack(packet.session_present, packet.reason_code);
  }
  const std::size_t body = packet.properties.encodedBodySize();
  if (body > kMaxRemainingLength - 2 - 4) {
    return {};
  }
  const auto remaining =
      static_cast<std::uint32_t>(2 + detail::varintSize(static_cast<std::uint32_t>(body)) + body);
  std::vector<std::uint8_t> out;
  out.reserve(1 + 4 + remaining);
  detail::Writer writer(out);
  writer.u8(kConnackFirstByte);
  writer.varint(remaining);
  writer.u8(packet.session_present ? 0x01 : 0x00);
  writer.u8(packet.reason_code);
  detail::writeProperties(writer, packet.properties);
  return out;
}

std::vector<std::uint8_t> addAssignedClientId(std::span<const std::uint8_t> connack_frame,
                                              std::string_view client_id,
                                              std::uint32_t client_max_packet_size) {
  auto connack = decodeConnack(ProtocolLevel::V5, connack_frame);
  if (!connack || connack->reason_code >= 0x80 || client_id.size() > kMaxFieldLength ||
      connack->properties.find(property::kAssignedClientIdentifier) != nullptr) {
    return {};
  }
  connack->properties.addString(property::kAssignedClientIdentifier, client_id);
  const auto fits = [&] {
    return client_max_packet_size == 0 ||
           v5ConnackSize(connack->properties) <= client_max_packet_size;
  };
  for (std::uint8_t droppable : {property::kReasonString, property::kUserProperty}) {
    if (fits()) {
      break;
    }
    connack->properties.remove(droppable);
  }
  return encodeConnack(ProtocolLevel::V5, *connack);
}

std::vector<std::uint8_t> encodeDisconnect(std::uint8_t reason_code) {
  return {0xE0, 0x02, reason_code, 0x00};
}

}  // namespace mqtls::mqtt

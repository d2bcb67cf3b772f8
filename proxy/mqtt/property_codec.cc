#include "mqtt/property_codec.h"

#include <algorithm>
#include <array>

namespace mqtls::mqtt::detail {
namespace {

std::string hexId(std::uint8_t id) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string text = "0x";
  text += kDigits[id >> 4];
  text += kDigits[id & 0x0F];
  return text;
}

WireStatus fail(WireError error, std::string detail) {
  return {error, std::move(detail)};
}

}  // namespace

WireStatus readPropertyValue(Reader& reader, PropertyType type) {
  std::uint8_t byte = 0;
  std::uint16_t two = 0;
  std::uint32_t four = 0;
  std::span<const std::uint8_t> field;
  bool complete = false;
  switch (type) {
    case PropertyType::Byte:
      complete = reader.readU8(byte);
      break;
    case PropertyType::TwoByte:
      complete = reader.readU16(two);
      break;
    case PropertyType::FourByte:
      complete = reader.readU32(four);
      break;
    case PropertyType::Varint:
      complete = reader.readVarint(four);
      break;
    case PropertyType::Binary:
      complete = reader.readPrefixed(field);
      break;
    case PropertyType::Utf8:
    case PropertyType::StringPair:
      for (int i = 0; i < (type == PropertyType::Utf8 ? 1 : 2); ++i) {
        complete = reader.readPrefixed(field);
        if (!complete) {
          break;
        }
        if (!utf8::isValid(asText(field), utf8::kMqtt)) {
          return fail(WireError::Malformed, "property string is not valid UTF-8");
        }
      }
      break;
    case PropertyType::Unknown:
      break;
  }
  if (!complete) {
    return fail(WireError::Malformed, "property value overruns the property length");
  }
  return {};
}

bool propertyValueAllowed(std::uint8_t id, std::span<const std::uint8_t> value) {
  switch (id) {
    case 0x01:  // Payload Format Indicator
    case 0x17:  // Request Problem Information
    case 0x19:  // Request Response Information
    case 0x24:  // Maximum QoS
    case 0x25:  // Retain Available
    case 0x28:  // Wildcard Subscription Available
    case 0x29:  // Subscription Identifier Available
    case 0x2A:  // Shared Subscription Available
      return value[0] <= 1;
    case 0x0B:  // Subscription Identifier
      return std::any_of(value.begin(), value.end(), [](std::uint8_t b) { return (b & 0x7F); });
    case 0x21:  // Receive Maximum
    case 0x23:  // Topic Alias
    case 0x27:  // Maximum Packet Size
      return std::any_of(value.begin(), value.end(), [](std::uint8_t b) { return b != 0; });
    default:
      return true;
  }
}

PropertyType propertyType(std::uint8_t id) {
  switch (id) {
    case 0x01:
    case 0x17:
    case 0x19:
    case 0x24:
    case 0x25:
    case 0x28:
    case 0x29:
    case 0x2A:
      return PropertyType::Byte;
    case 0x13:
    case 0x21:
    case 0x22:
    case 0x23:
      return PropertyType::TwoByte;
    case 0x02:
    case 0x11:
    case 0x18:
    case 0x27:
      return PropertyType::FourByte;
    case 0x0B:
      return PropertyType::Varint;
    case 0x03:
    case 0x08:
    case 0x12:
    case 0x15:
    case 0x1A:
    case 0x1C:
    case 0x1F:
      return PropertyType::Utf8;
    case 0x09:
    case 0x16:
      return PropertyType::Binary;
    case 0x26:
      return PropertyType::StringPair;
    default:
      return PropertyType::Unknown;
  }
}

WireStatus readProperties(Reader& reader, std::span<const std::uint8_t> legal_ids,
                          std::string_view where, Properties& out) {
  out.items().clear();
  std::uint32_t length = 0;
  std::span<const std::uint8_t> body;
  if (!reader.readVarint(length)) {
    return fail(WireError::Malformed, std::string(where) + " property length is malformed");
  }
  if (!reader.readSpan(length, body)) {
    return fail(WireError::Malformed, std::string(where) + " property length overruns the packet");
  }
  Reader list(body);
  std::array<bool, 256> seen{};
  while (!list.atEnd()) {
    std::uint8_t id = 0;
    list.readU8(id);
    const PropertyType type = propertyType(id);
    if (type == PropertyType::Unknown) {
      return fail(WireError::Malformed, std::string(where) + " has unknown property " + hexId(id));
    }
    if (std::find(legal_ids.begin(), legal_ids.end(), id) == legal_ids.end()) {
      return fail(WireError::ProtocolError,
                  "property " + hexId(id) + " is not allowed in " + std::string(where));
    }
    if (id != property::kUserProperty && seen[id]) {
      return fail(WireError::ProtocolError,
                  "property " + hexId(id) + " appears twice in " + std::string(where));
    }
    seen[id] = true;
    const std::size_t start = list.position();
    if (WireStatus status = readPropertyValue(list, type); !status.ok()) {
      status.detail += " (" + std::string(where) + ", property " + hexId(id) + ")";
      return status;
    }
    const auto value = list.since(start);
    if (!propertyValueAllowed(id, value)) {
      return fail(WireError::ProtocolError,
                  "property " + hexId(id) + " has a forbidden value in " + std::string(where));
    }
    out.items().push_back(Property{id, std::string(value.begin(), value.end())});
  }
  if (seen[property::kAuthenticationData] && !seen[property::kAuthenticationMethod]) {
    return fail(WireError::ProtocolError,
                "authentication data without authentication method in " + std::string(where));
  }
  return {};
}

void writeProperties(Writer& writer, const Properties& properties) {
  writer.varint(static_cast<std::uint32_t>(properties.encodedBodySize()));
  for (const Property& item : properties.items()) {
    writer.u8(item.id);
    writer.bytes(item.raw);
  }
}

bool splitPrefixed(std::string_view raw, std::string_view& field, std::string_view& rest) {
  if (raw.size() < 2) {
    return false;
  }
  const std::size_t length =
      (std::size_t{static_cast<std::uint8_t>(raw[0])} << 8) | static_cast<std::uint8_t>(raw[1]);
  if (raw.size() - 2 < length) {
    return false;
  }
  field = raw.substr(2, length);
  rest = raw.substr(2 + length);
  return true;
}

}  // namespace mqtls::mqtt::detail

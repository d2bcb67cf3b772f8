// Wire form of MQTT 5 property lists (5.0 §2.2.2): the data type of each identifier, decoding a
// Property Length and its properties from untrusted bytes, and writing a list back. Internal to
// the codec.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "mqtt/reader.h"
#include "mqtt/writer.h"

namespace mqtls::mqtt::detail {

enum class PropertyType : std::uint8_t {
  Unknown,
  Byte,
  TwoByte,
  FourByte,
  Varint,
  Utf8,
  Binary,
  StringPair,
};

// Data type of a property identifier (5.0 §2.2.2.2); Unknown for identifiers the spec does not
// define.
PropertyType propertyType(std::uint8_t id);

// Properties allowed in CONNECT, in a will (the CONNECT payload) and in CONNACK.
inline constexpr std::uint8_t kConnectPropertyIds[] = {0x11, 0x21, 0x27, 0x22, 0x19,
                                                       0x17, 0x26, 0x15, 0x16};
inline constexpr std::uint8_t kWillPropertyIds[] = {0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26};
inline constexpr std::uint8_t kConnackPropertyIds[] = {0x11, 0x21, 0x24, 0x25, 0x27, 0x12,
                                                       0x22, 0x1F, 0x26, 0x28, 0x29, 0x2A,
                                                       0x13, 0x1A, 0x1C, 0x15, 0x16};

// Properties a client may put in PUBLISH (5.0 §3.3.2.3; Subscription Identifier is only legal
// from the server).
inline constexpr std::uint8_t kPublishPropertyIds[] = {0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x03};

enum class WireError : std::uint8_t { None, Malformed, ProtocolError };

struct WireStatus {
  WireError error = WireError::None;
  std::string detail;
  bool ok() const { return error == WireError::None; }
};

// Reads (and skips) one property value of `type`, without allocating when it is well-formed.
// Malformed when it is truncated, a string is not MQTT UTF-8, or the type is Unknown.
WireStatus readPropertyValue(Reader& reader, PropertyType type);

// False for values the spec calls a Protocol Error for this identifier (a 0/1 flag above 1,
// Receive Maximum / Topic Alias / Maximum Packet Size / Subscription Identifier 0). `value` is the
// raw value, as readPropertyValue consumed it.
bool propertyValueAllowed(std::uint8_t id, std::span<const std::uint8_t> value);

// Reads a Property Length and the properties it covers into `out` (replacing its contents), each
// kept as its raw wire value. Malformed: the length or a value is truncated or overruns the
// packet, an identifier is not defined by the spec, a string is not valid MQTT UTF-8.
// ProtocolError: an identifier outside `legal_ids`, a non-user property given twice, a value the
// spec forbids (e.g. Receive Maximum 0, a 0/1 flag above 1), authentication data without an
// authentication method. `where` names the list in the detail text.
WireStatus readProperties(Reader& reader, std::span<const std::uint8_t> legal_ids,
                          std::string_view where, Properties& out);

// Writes the minimal Property Length varint and the properties.
// Precondition: properties.encodedBodySize() <= kMaxRemainingLength.
void writeProperties(Writer& writer, const Properties& properties);

// Decodes a two-byte-length-prefixed field at the start of `raw`; false if it does not fit.
bool splitPrefixed(std::string_view raw, std::string_view& field, std::string_view& rest);

}  // namespace mqtls::mqtt::detail

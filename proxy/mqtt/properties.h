// MQTT 5 property lists: decoded into (identifier, raw value bytes) pairs so that the proxy can
// remove or add entries and re-encode the rest exactly as received.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mqtls::mqtt {

struct Property {
  std::uint8_t id = 0;
  // The value exactly as on the wire after the identifier byte (for a string: two-byte length +
  // bytes; for a user property: both length-prefixed strings; for a varint: its bytes).
  std::string raw;

  bool operator==(const Property&) const = default;
};

class Properties {
 public:
  std::vector<Property>& items() { return items_; }
  const std::vector<Property>& items() const { return items_; }
  bool empty() const { return items_.empty(); }

  // First property with this id, if any.
  const Property* find(std::uint8_t id) const;
  // Decoded UTF-8 string value of a string-typed property, if present.
  std::optional<std::string> findString(std::uint8_t id) const;

  // All user properties (0x26) as decoded (name, value) pairs, in wire order.
  std::vector<std::pair<std::string, std::string>> userProperties() const;
  // Appends a user property. Precondition: name/value each <= 65,535 bytes (longer ones are not
  // representable and nothing is added).
  void addUserProperty(std::string_view name, std::string_view value);
  // Appends a UTF-8 string property (e.g. Reason String, Assigned Client Identifier). A value
  // over 65,535 bytes is not representable and nothing is added.
  void addString(std::uint8_t id, std::string_view value);
  // Removes every user property whose name equals one of `names` (byte-exact). Returns count.
  std::size_t removeUserProperties(const std::vector<std::string>& names);
  // Removes every property with this id. Returns count.
  std::size_t remove(std::uint8_t id);

  // Sum of (1 + raw.size()) over items: the Property Length value.
  std::size_t encodedBodySize() const;

  // Same identifiers and raw values in the same order.
  bool operator==(const Properties&) const = default;

 private:
  std::vector<Property> items_;
};

}  // namespace mqtls::mqtt

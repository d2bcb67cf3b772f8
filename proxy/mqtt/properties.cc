#include "mqtt/properties.h"

#include <algorithm>

#include "mqtt/packet.h"
#include "mqtt/property_codec.h"
#include "mqtt/writer.h"

namespace mqtls::mqtt {
namespace {

std::string prefixed(std::string_view text) {
  std::string raw;
  raw.reserve(2 + text.size());
  detail::BasicWriter<std::string>(raw).lengthPrefixed(text);
  return raw;
}

// Name and value of a user property's raw bytes; false if the raw bytes are not a string pair.
bool splitUserProperty(const Property& item, std::string_view& name, std::string_view& value) {
  std::string_view rest;
  std::string_view tail;
  return item.id == property::kUserProperty && detail::splitPrefixed(item.raw, name, rest) &&
         detail::splitPrefixed(rest, value, tail) && tail.empty();
}

}  // namespace

const Property* Properties::find(std::uint8_t id) const {
  for (const Property& item : items_) {
    if (item.id == id) {
      return &item;
    }
  }
  return nullptr;
}

std::optional<std::string> Properties::findString(std::uint8_t id) const {
  const Property* item = find(id);
  if (item == nullptr || detail::propertyType(id) != detail::PropertyType::Utf8) {
    return std::nullopt;
  }
  std::string_view value;
  std::string_view rest;
  if (!detail::splitPrefixed(item->raw, value, rest) || !rest.empty()) {
    return std::nullopt;
  }
  return std::string(value);
}

std::vector<std::pair<std::string, std::string>> Properties::userProperties() const {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const Property& item : items_) {
    std::string_view name;
    std::string_view value;
    if (splitUserProperty(item, name, value)) {
      pairs.emplace_back(std::string(name), std::string(value));
    }
  }
  return pairs;
}

void Properties::addUserProperty(std::string_view name, std::string_view value) {
  if (name.size() > kMaxFieldLength || value.size() > kMaxFieldLength) {
    return;
  }
  items_.push_back(Property{property::kUserProperty, prefixed(name) + prefixed(value)});
}

void Properties::addString(std::uint8_t id, std::string_view value) {
  if (value.size() > kMaxFieldLength) {
    return;
  }
  items_.push_back(Property{id, prefixed(value)});
}

std::size_t Properties::removeUserProperties(const std::vector<std::string>& names) {
  const auto removed = std::erase_if(items_, [&names](const Property& item) {
    std::string_view name;
    std::string_view value;
    return splitUserProperty(item, name, value) &&
           std::find(names.begin(), names.end(), name) != names.end();
  });
  return static_cast<std::size_t>(removed);
}

std::size_t Properties::remove(std::uint8_t id) {
  const auto removed = std::erase_if(items_, [id](const Property& item) { return item.id == id; });
  return static_cast<std::size_t>(removed);
}

std::size_t Properties::encodedBodySize() const {
  std::size_t size = 0;
  for (const Property& item : items_) {
    size += 1 + item.raw.size();
  }
  return size;
}

}  // namespace mqtls::mqtt

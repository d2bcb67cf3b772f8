#include "mqtt/publish.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "mqtt/packet.h"
#include "mqtt/property_codec.h"
#include "mqtt/reader.h"
#include "mqtt/writer.h"
#include "util/utf8.h"

namespace mqtls::mqtt {
namespace {

using detail::Reader;

// The parts of a valid PUBLISH, as views into the frame, and what the stamp removes from it.
struct PublishParts {
  std::uint8_t first = 0;
  std::span<const std::uint8_t> head;        // topic name and packet identifier, as received
  std::span<const std::uint8_t> properties;  // the property list, without its length
  std::span<const std::uint8_t> payload;
  std::size_t removed_bytes = 0;  // wire bytes of the user properties the stamp strips
};

// True when the user property `value` (raw: both length-prefixed strings) has a stripped name.
bool stripped(std::span<const std::uint8_t> value, const PublishStamp& stamp) {
  Reader reader(value);
  std::span<const std::uint8_t> name;
  if (!reader.readPrefixed(name)) {
    return false;
  }
  const std::string_view text = detail::asText(name);
  return std::find(stamp.strip_names.begin(), stamp.strip_names.end(), text) !=
         stamp.strip_names.end();
}

// Validates a PUBLISH frame and splits it into parts. Returns false with `detail` set on the
// first violation; the detail never quotes topic, property or payload bytes.
class PublishScanner {
 public:
  PublishScanner(const PublishStamp& stamp, PublishParts& parts, std::string& detail)
      : stamp_(stamp), parts_(parts), detail_(detail) {}

  bool run(std::span<const std::uint8_t> frame) {
    std::span<const std::uint8_t> body;
    if (!detail::splitFrame(frame, parts_.first, body)) {
      return fail("frame size does not match its Remaining Length");
    }
    if ((parts_.first >> 4) != static_cast<int>(PacketType::Publish)) {
      return fail("not a PUBLISH");
    }
    Reader reader(body);
    return readHead(reader) && readProperties(reader) && finish(reader);
  }

 private:
  bool fail(std::string_view what) {
    detail_ = "PUBLISH: ";
    detail_ += what;
    return false;
  }

  // Topic name and, for QoS 1 and 2, the packet identifier.
  bool readHead(Reader& reader) {
    const int qos = (parts_.first >> 1) & 0x03;
    if (qos == 3) {
      return fail("QoS is 3");
    }
    std::span<const std::uint8_t> topic;
    if (!reader.readPrefixed(topic)) {
      return fail("truncated topic name");
    }
    const std::string_view text = detail::asText(topic);
    if (!utf8::isValid(text, utf8::kMqtt)) {
      return fail("topic name is not valid UTF-8");
    }
    if (text.find_first_of("+#") != std::string_view::npos) {
      return fail("topic name holds a wildcard character");
    }
    empty_topic_ = topic.empty();
    std::uint16_t packet_id = 0;
    if (qos > 0 && !reader.readU16(packet_id)) {
      return fail("truncated packet identifier");
    }
    if (qos > 0 && packet_id == 0) {
      return fail("packet identifier is 0");
    }
    parts_.head = reader.since(0);
    return true;
  }

  bool readProperties(Reader& reader) {
    std::uint32_t length = 0;
    if (!reader.readVarint(length)) {
      return fail("property length is malformed");
    }
    if (!reader.readSpan(length, parts_.properties)) {
      return fail("property length overruns the packet");
    }
    Reader list(parts_.properties);
    while (!list.atEnd()) {
      if (!readProperty(list)) {
        return false;
      }
    }
    return true;
  }

  bool readProperty(Reader& list) {
    std::uint8_t id = 0;
    list.readU8(id);
    const detail::PropertyType type = detail::propertyType(id);
    if (type == detail::PropertyType::Unknown) {
      return fail("unknown property identifier");
    }
    const auto& legal = detail::kPublishPropertyIds;
    if (std::find(std::begin(legal), std::end(legal), id) == std::end(legal)) {
      return fail("property not allowed in a client's PUBLISH");
    }
    if (id != property::kUserProperty && seen_[id]) {
      return fail("property given twice");
    }
    seen_[id] = true;
    const std::size_t start = list.position();
    if (const detail::WireStatus status = detail::readPropertyValue(list, type); !status.ok()) {
      return fail(status.detail);
    }
    const auto value = list.since(start);
    if (!detail::propertyValueAllowed(id, value)) {
      return fail("property has a value the specification forbids");
    }
    if (id == property::kUserProperty && stripped(value, stamp_)) {
      parts_.removed_bytes += 1 + value.size();
    }
    return true;
  }

  bool finish(Reader& reader) {
    if (empty_topic_ && !seen_[property::kTopicAlias]) {
      return fail("empty topic name without a topic alias");
    }
    return reader.readSpan(reader.remaining(), parts_.payload);
  }

  const PublishStamp& stamp_;
  PublishParts& parts_;
  std::string& detail_;
  std::array<bool, 256> seen_{};
  bool empty_topic_ = false;
};

// Copies the property list without the stripped user properties. The list was validated.
void writeKeptProperties(detail::Writer& writer, std::span<const std::uint8_t> properties,
                         const PublishStamp& stamp) {
  Reader list(properties);
  while (!list.atEnd()) {
    const std::size_t start = list.position();
    std::uint8_t id = 0;
    list.readU8(id);
    const std::size_t value_start = list.position();
    (void)detail::readPropertyValue(list, detail::propertyType(id));
    if (id != property::kUserProperty || !stripped(list.since(value_start), stamp)) {
      writer.bytes(list.since(start));
    }
  }
}

PublishRewrite tooLarge(std::string detail) {
  return {PublishRewriteStatus::TooLarge, {}, std::move(detail)};
}

}  // namespace

PublishRewrite rewritePublishV5(std::span<const std::uint8_t> frame, const PublishStamp& stamp,
                                std::uint32_t max_packet_size) {
  PublishParts parts;
  PublishRewrite result;
  if (!PublishScanner(stamp, parts, result.detail).run(frame)) {
    result.status = PublishRewriteStatus::Malformed;
    return result;
  }
  if (parts.removed_bytes == 0 && stamp.add.empty()) {
    return result;
  }
  std::uint64_t added = 0;
  for (const auto& [name, value] : stamp.add) {
    if (name.size() > kMaxFieldLength || value.size() > kMaxFieldLength) {
      return tooLarge("PUBLISH: an added user property exceeds 65535 bytes");
    }
    added += 1 + 2 + name.size() + 2 + value.size();
  }
  const std::uint64_t properties = parts.properties.size() - parts.removed_bytes + added;
  if (properties > kMaxRemainingLength) {
    return tooLarge("PUBLISH: properties would exceed the MQTT maximum");
  }
  const auto property_length = static_cast<std::uint32_t>(properties);
  const std::uint64_t remaining =
      parts.head.size() + detail::varintSize(property_length) + properties + parts.payload.size();
  if (remaining > kMaxRemainingLength) {
    return tooLarge("PUBLISH: rewritten packet would exceed the MQTT maximum");
  }
  const std::uint64_t total =
      1 + detail::varintSize(static_cast<std::uint32_t>(remaining)) + remaining;
  if (max_packet_size != 0 && total > max_packet_size) {
    return tooLarge("PUBLISH: rewritten packet of " + std::to_string(total) +
                    " bytes exceeds the maximum packet size " + std::to_string(max_packet_size));
  }
  result.status = PublishRewriteStatus::Rewritten;
  result.bytes.reserve(static_cast<std::size_t>(total));
  detail::Writer writer(result.bytes);
  writer.u8(parts.first);
  writer.varint(static_cast<std::uint32_t>(remaining));
  writer.bytes(parts.head);
  writer.varint(property_length);
  writeKeptProperties(writer, parts.properties, stamp);
  for (const auto& [name, value] : stamp.add) {
    writer.u8(property::kUserProperty);
    writer.lengthPrefixed(name);
    writer.lengthPrefixed(value);
  }
  writer.bytes(parts.payload);
  return result;
}

}  // namespace mqtls::mqtt

#include "mqtt_wire.h"

namespace mqtls::bench {
void appendLength(std::vector<std::uint8_t>& out, std::size_t length) {
  do {
    std::uint8_t byte = length % 128;
    length /= 128;
    out.push_back(length > 0 ? byte | 0x80 : byte);
  } while (length > 0);
}

namespace {

void appendString(std::vector<std::uint8_t>& out, std::string_view text) {
  out.push_back(static_cast<std::uint8_t>(text.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(text.size() & 0xFF));
  out.insert(out.end(), text.begin(), text.end());
}

std::vector<std::uint8_t> packet(std::uint8_t first, const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> out{first};
  appendLength(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

std::vector<std::uint8_t> encodeConnect(std::string_view client_id, std::uint16_t keep_alive) {
  std::vector<std::uint8_t> body;
  appendString(body, "MQTT");
  body.push_back(4);     // protocol level 3.1.1
  body.push_back(0x02);  // clean session
  body.push_back(static_cast<std::uint8_t>(keep_alive >> 8));
  body.push_back(static_cast<std::uint8_t>(keep_alive & 0xFF));
  appendString(body, client_id);
  return packet(0x10, body);
}

std::vector<std::uint8_t> encodeSubscribe(std::uint16_t packet_id, std::string_view topic) {
  std::vector<std::uint8_t> body{static_cast<std::uint8_t>(packet_id >> 8),
                                 static_cast<std::uint8_t>(packet_id & 0xFF)};
  appendString(body, topic);
  body.push_back(0);  // QoS 0
  return packet(0x82, body);
}

std::vector<std::uint8_t> encodeDisconnect() {
  return {0xE0, 0x00};
}

void appendPublishHeader(std::vector<std::uint8_t>& out, std::string_view topic,
                         std::size_t payload_size) {
  out.push_back(0x30);
  appendLength(out, 2 + topic.size() + payload_size);
  appendString(out, topic);
}

ParseStatus parseFrame(std::span<const std::uint8_t> bytes, Frame& frame) {
  if (bytes.size() < 2) {
    return ParseStatus::NeedMore;
  }
  std::size_t length = 0;
  std::size_t at = 1;
  for (int shift = 0;; shift += 7) {
    if (shift > 21) {
      return ParseStatus::Malformed;
    }
    if (at >= bytes.size()) {
      return ParseStatus::NeedMore;
    }
    std::uint8_t byte = bytes[at++];
    length |= std::size_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80) == 0) {
      break;
    }
  }
  if (bytes.size() < at + length) {
    return ParseStatus::NeedMore;
  }
  frame.type = static_cast<PacketType>(bytes[0] >> 4);
  frame.flags = bytes[0] & 0x0F;
  frame.body = bytes.subspan(at, length);
  frame.total_size = at + length;
  return ParseStatus::Complete;
}

std::span<const std::uint8_t> publishPayload(std::span<const std::uint8_t> body) {
  if (body.size() < 2) {
    return {};
  }
  std::size_t topic_length = (std::size_t{body[0]} << 8) | body[1];
  if (body.size() < 2 + topic_length) {
    return {};
  }
  return body.subspan(2 + topic_length);
}

}  // namespace mqtls::bench

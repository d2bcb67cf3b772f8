// The few MQTT 3.1.1 packets the load generator sends and receives, written independently of the
// proxy's codec so the benchmark checks the proxy rather than sharing its assumptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace mqtls::bench {

enum class PacketType : std::uint8_t {
  Connect = 1,
  Connack = 2,
  Publish = 3,
  Subscribe = 8,
  Suback = 9,
  Disconnect = 14,
};

// CONNECT, MQTT 3.1.1, clean session, no username or password (the proxy supplies the identity).
// Appends an MQTT variable byte integer (the remaining length of a fixed header).
void appendLength(std::vector<std::uint8_t>& out, std::size_t length);

std::vector<std::uint8_t> encodeConnect(std::string_view client_id, std::uint16_t keep_alive);

// SUBSCRIBE to one topic filter at QoS 0.
std::vector<std::uint8_t> encodeSubscribe(std::uint16_t packet_id, std::string_view topic);

std::vector<std::uint8_t> encodeDisconnect();

// Appends the fixed header and topic of a QoS 0 PUBLISH whose payload has `payload_size` bytes;
// the caller appends the payload itself.
void appendPublishHeader(std::vector<std::uint8_t>& out, std::string_view topic,
                         std::size_t payload_size);

struct Frame {
  PacketType type{};
  std::uint8_t flags = 0;
  std::span<const std::uint8_t> body;
  std::size_t total_size = 0;  // fixed header + body
};

enum class ParseStatus { Complete, NeedMore, Malformed };

// Parses the packet at the front of `bytes`.
ParseStatus parseFrame(std::span<const std::uint8_t> bytes, Frame& frame);

// The payload of a QoS 0 PUBLISH body (after the topic), or an empty span if malformed.
std::span<const std::uint8_t> publishPayload(std::span<const std::uint8_t> body);

}  // namespace mqtls::bench

// MQTT 5 PUBLISH rewriting: removes forged identity user properties from a PUBLISH a client
// sends and appends the ones taken from its certificate. The payload is copied untouched.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace mqtls::mqtt {

// Applied to every MQTT 5 PUBLISH a client sends.
struct PublishStamp {
  std::vector<std::string> strip_names;                  // user property names to remove
  std::vector<std::pair<std::string, std::string>> add;  // user properties appended, in order
  bool empty() const { return strip_names.empty() && add.empty(); }
};

enum class PublishRewriteStatus : std::uint8_t {
  Unchanged,  // valid, and nothing to remove or add: forward the frame as it is (bytes empty)
  Rewritten,  // bytes holds the new frame
  Malformed,  // the frame breaks the MQTT 5 PUBLISH rules: detail says which (no payload bytes)
  TooLarge,   // the rewritten frame would exceed the limit: detail says by how much
};

struct PublishRewrite {
  PublishRewriteStatus status = PublishRewriteStatus::Unchanged;
  std::vector<std::uint8_t> bytes;
  std::string detail;
};

// Rewrites one complete MQTT 5 PUBLISH frame (fixed header included, as found by peekFrame,
// type 3). Checks: QoS below 3; topic name strict MQTT UTF-8 without wildcards, and empty only
// with a Topic Alias; a non-zero packet identifier when QoS > 0; a well-formed property list
// holding only the properties a client may send in PUBLISH (payload format, message expiry,
// topic alias, response topic, correlation data, user property, content type), each non-user
// property at most once, with values the spec allows. Then every user property whose name is in
// stamp.strip_names is removed and stamp.add is appended, with the Remaining Length recomputed.
// TooLarge when the result exceeds `max_packet_size` (whole frame; 0 = no limit) or the MQTT
// maximum, or an added name or value exceeds 65,535 bytes. One output allocation; never reads
// outside `frame`.
PublishRewrite rewritePublishV5(std::span<const std::uint8_t> frame, const PublishStamp& stamp,
                                std::uint32_t max_packet_size);

}  // namespace mqtls::mqtt

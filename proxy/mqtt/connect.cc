#include "mqtt/connect.h"

#include <string>
#include <utility>

#include "mqtt/connect_peek.h"
#include "mqtt/property_codec.h"
#include "mqtt/reader.h"

namespace mqtls::mqtt {
namespace {

using detail::Reader;

constexpr std::uint8_t kFlagReserved = 0x01;
constexpr std::uint8_t kFlagCleanStart = 0x02;
constexpr std::uint8_t kFlagWill = 0x04;
constexpr std::uint8_t kFlagWillRetain = 0x20;
constexpr std::uint8_t kFlagPassword = 0x40;
constexpr std::uint8_t kFlagUsername = 0x80;

// Decodes the body of one CONNECT (everything after the fixed header). Each step returns false
// after recording the first problem in error_, with the protocol level once it is known.
class ConnectDecoder {
 public:
  explicit ConnectDecoder(std::span<const std::uint8_t> body) : reader_(body) {}

  ConnectDecodeResult run() {
    ConnectDecodeResult result;
    if (readProtocol() && readFlags() && readProperties() && readPayload()) {
      result.packet = std::move(packet_);
    } else {
      result.error = std::move(error_);
    }
    return result;
  }

 private:
  bool fail(Refusal refusal, std::string detail) {
    error_.refusal = refusal;
    error_.level = level_;
    error_.detail = std::move(detail);
    return false;
  }

  // Protocol name and level: unknown name is ProtocolError without a level; a known name with a
  // level it does not go with is UnsupportedVersion (answered in the v3 format).
  bool readProtocol() {
    std::string name;
    std::uint8_t level_byte = 0;
    if (!reader_.readBinary(name) || !reader_.readU8(level_byte)) {
      return fail(Refusal::Malformed, "truncated protocol name or level");
    }
    const bool mqisdp = name == "MQIsdp";
    const bool mqtt = name == "MQTT";
    if (!mqisdp && !mqtt) {
      return fail(Refusal::ProtocolError, "unknown protocol name");
    }
    const std::uint8_t number = level_byte & 0x7F;
    packet_.bridge = (level_byte & 0x80) != 0;
    if (mqisdp && number == 3) {
      level_ = ProtocolLevel::V31;
    } else if (mqtt && (number == 4 || number == 5)) {
      level_ = static_cast<ProtocolLevel>(number);
    } else {
      level_ = mqisdp ? ProtocolLevel::V31 : ProtocolLevel::V311;
      std::string detail = "protocol level " + std::to_string(number) + " is not supported for ";
      detail += mqisdp ? "MQIsdp" : "MQTT";
      return fail(Refusal::UnsupportedVersion, std::move(detail));
    }
    packet_.level = *level_;
    return true;
  }

  bool readFlags() {
    if (!reader_.readU8(flags_) || !reader_.readU16(packet_.keep_alive)) {
      return fail(Refusal::Malformed, "truncated connect flags or keep alive");
    }
    const std::uint8_t will_qos = (flags_ >> 3) & 0x03;
    const bool will_retain = (flags_ & kFlagWillRetain) != 0;
    if ((flags_ & kFlagReserved) != 0) {
      return fail(Refusal::Malformed, "reserved connect flag is set");
    }
    if (will_qos == 3) {
      return fail(Refusal::Malformed, "will QoS is 3");
    }
    if ((flags_ & kFlagWill) == 0 && (will_qos != 0 || will_retain)) {
      return fail(Refusal::Malformed, "will QoS or retain set without a will");
    }
    if (level_ != ProtocolLevel::V5 && (flags_ & kFlagPassword) != 0 &&
        (flags_ & kFlagUsername) == 0) {
      return fail(Refusal::ProtocolError, "password without user name");
    }
    packet_.clean_start = (flags_ & kFlagCleanStart) != 0;
    return true;
  }

  bool readPropertyList(std::span<const std::uint8_t> legal, std::string_view where,
                        Properties& out) {
    const detail::WireStatus status = detail::readProperties(reader_, legal, where, out);
    if (status.ok()) {
      return true;
    }
    const bool malformed = status.error == detail::WireError::Malformed;
    return fail(malformed ? Refusal::Malformed : Refusal::ProtocolError, status.detail);
  }

  bool readProperties() {
    return level_ != ProtocolLevel::V5 ||
           readPropertyList(detail::kConnectPropertyIds, "CONNECT", packet_.properties);
  }

  bool readString(std::string& out, std::string_view what) {
    switch (detail::readUtf8(reader_, out)) {
      case detail::StringRead::Ok:
        return true;
      case detail::StringRead::Truncated:
        return fail(Refusal::Malformed, "truncated " + std::string(what));
      case detail::StringRead::BadUtf8:
        break;
    }
    return fail(Refusal::Malformed, std::string(what) + " is not valid UTF-8");
  }

  bool readBinary(std::string& out, std::string_view what) {
    return reader_.readBinary(out) || fail(Refusal::Malformed, "truncated " + std::string(what));
  }

  bool readWill() {
    Will will;
    will.qos = (flags_ >> 3) & 0x03;
    will.retain = (flags_ & kFlagWillRetain) != 0;
    if (level_ == ProtocolLevel::V5 &&
        !readPropertyList(detail::kWillPropertyIds, "will properties", will.properties)) {
      return false;
    }
    if (!readString(will.topic, "will topic") || !readBinary(will.payload, "will payload")) {
      return false;
    }
    packet_.will = std::move(will);
    return true;
  }

  // Payload in wire order: client id, will (properties, topic, payload), user name, password.
  bool readPayload() {
    if (!readString(packet_.client_id, "client identifier")) {
      return false;
    }
    if ((flags_ & kFlagWill) != 0 && !readWill()) {
      return false;
    }
    if ((flags_ & kFlagUsername) != 0 && !readString(packet_.username.emplace(), "user name")) {
      return false;
    }
    if ((flags_ & kFlagPassword) != 0 && !readBinary(packet_.password.emplace(), "password")) {
      return false;
    }
    if (!reader_.atEnd()) {
      return fail(Refusal::Malformed, "bytes left after the CONNECT payload");
    }
    return true;
  }

  Reader reader_;
  ConnectPacket packet_;
  std::optional<ProtocolLevel> level_;
  std::uint8_t flags_ = 0;
  ConnectError error_;
};

}  // namespace

ConnectDecodeResult decodeConnect(std::span<const std::uint8_t> frame) {
  std::uint8_t first = 0;
  std::span<const std::uint8_t> body;
  if (!detail::splitFrame(frame, first, body)) {
    ConnectDecodeResult result;
    result.error = {Refusal::Malformed, std::nullopt,
                    "frame size does not match its Remaining Length"};
    return result;
  }
  if ((first >> 4) != static_cast<int>(PacketType::Connect)) {
    ConnectDecodeResult result;
    result.error = {Refusal::ProtocolError, std::nullopt, "not a CONNECT"};
    return result;
  }
  if (first != 0x10) {
    // Malformed, but answerable: a client whose level can be read gets a CONNACK it understands.
    ConnectDecodeResult result;
    const ConnectLevelPeek peek = peekConnectLevel(frame, frame.size() - body.size());
    result.error = {Refusal::Malformed,
                    peek.status == LevelPeek::Known ? std::optional(peek.level) : std::nullopt,
                    "CONNECT fixed header flags are not zero"};
    return result;
  }
  return ConnectDecoder(body).run();
}

}  // namespace mqtls::mqtt

#include "mqtt/replies.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hex.h"

namespace mqtls::mqtt {
namespace {

using mqtls::test::hex;

struct RefusalCase {
  Refusal refusal;
  std::vector<std::uint8_t> v3;  // levels 3 and 4
  std::vector<std::uint8_t> v5;
};

TEST(Replies, RefusalBytesForEveryRefusalAndLevel) {
  const std::vector<RefusalCase> cases = {
      {Refusal::Malformed, {}, hex("20 03 00 81 00")},
      {Refusal::ProtocolError, {}, hex("20 03 00 82 00")},
      {Refusal::UnsupportedVersion, hex("20 02 00 01"), hex("20 02 00 01")},
      {Refusal::IdentifierRejected, hex("20 02 00 02"), hex("20 03 00 85 00")},
      {Refusal::ServerUnavailable, hex("20 02 00 03"), hex("20 03 00 88 00")},
      {Refusal::BadCredentials, hex("20 02 00 04"), hex("20 03 00 86 00")},
      {Refusal::NotAuthorized, hex("20 02 00 05"), hex("20 03 00 87 00")},
      {Refusal::BadAuthMethod, hex("20 02 00 05"), hex("20 03 00 8c 00")},
      {Refusal::PacketTooLarge, {}, hex("20 03 00 95 00")},
  };
  for (const auto& c : cases) {
    const auto name = refusalName(c.refusal);
    EXPECT_EQ(encodeRefusal(ProtocolLevel::V31, c.refusal), c.v3) << name;
    EXPECT_EQ(encodeRefusal(ProtocolLevel::V311, c.refusal), c.v3) << name;
    EXPECT_EQ(encodeRefusal(ProtocolLevel::V5, c.refusal), c.v5) << name;
    EXPECT_EQ(connackReasonCode(ProtocolLevel::V311, c.refusal).has_value(), !c.v3.empty()) << name;
  }
}

TEST(Replies, ReasonCodes) {
  EXPECT_EQ(connackReasonCode(ProtocolLevel::V5, Refusal::NotAuthorized), 0x87);
  EXPECT_EQ(connackReasonCode(ProtocolLevel::V5, Refusal::UnsupportedVersion), 0x01);
  EXPECT_EQ(connackReasonCode(ProtocolLevel::V31, Refusal::BadAuthMethod), 0x05);
  EXPECT_EQ(connackReasonCode(ProtocolLevel::V311, Refusal::Malformed), std::nullopt);
  EXPECT_EQ(connackReasonCode(ProtocolLevel::V311, Refusal::PacketTooLarge), std::nullopt);
}

TEST(Replies, V5ReasonString) {
  EXPECT_EQ(encodeRefusal(ProtocolLevel::V5, Refusal::NotAuthorized, "no"),
            hex("20 08 00 87 05 1f 00 02 6e 6f"));
  // Exactly at the client's Maximum Packet Size it is sent; one byte under, it is left out.
  EXPECT_EQ(encodeRefusal(ProtocolLevel::V5, Refusal::NotAuthorized, "no", 10),
            hex("20 08 00 87 05 1f 00 02 6e 6f"));
  EXPECT_EQ(encodeRefusal(ProtocolLevel::V5, Refusal::NotAuthorized, "no", 9),
            hex("20 03 00 87 00"));
  // Never on v3 or on the v3-format UnsupportedVersion answer.
  EXPECT_EQ(encodeRefusal(ProtocolLevel::V311, Refusal::NotAuthorized, "no"), hex("20 02 00 05"));
  EXPECT_EQ(encodeRefusal(ProtocolLevel::V5, Refusal::UnsupportedVersion, "no"),
            hex("20 02 00 01"));
  EXPECT_EQ(encodeRefusal(ProtocolLevel::V311, Refusal::Malformed, "no"),
            std::vector<std::uint8_t>{});
  // A reason string that is not valid UTF-8 is left out rather than sent.
  EXPECT_EQ(encodeRefusal(ProtocolLevel::V5, Refusal::NotAuthorized, std::string("a\0b", 3)),
            hex("20 03 00 87 00"));
}

TEST(Replies, LongReasonStringUsesVarintLengths) {
  const std::string reason(200, 'r');
  const auto bytes = encodeRefusal(ProtocolLevel::V5, Refusal::ServerUnavailable, reason);
  // Property length 203, Remaining Length 2 + 2 + 203.
  ASSERT_EQ(bytes.size(), 3u + 207u);
  EXPECT_EQ(std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + 7),
            hex("20 cf 01 00 88 cb 01"));
  const auto decoded = decodeConnack(ProtocolLevel::V5, bytes);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->properties.findString(property::kReasonString), reason);
}

TEST(Replies, ConnackV5AddAssignedClientIdentifier) {
  const auto broker = hex("20 0d 00 00 0a 21 00 14 26 00 01 61 00 01 62");
  auto connack = decodeConnack(ProtocolLevel::V5, broker);
  ASSERT_TRUE(connack.has_value());
  EXPECT_FALSE(connack->session_present);
  EXPECT_EQ(connack->reason_code, 0x00);
  ASSERT_EQ(connack->properties.items().size(), 2u);
  EXPECT_EQ(encodeConnack(ProtocolLevel::V5, *connack), broker);

  connack->properties.addString(property::kAssignedClientIdentifier, "abc");
  const auto rewritten = encodeConnack(ProtocolLevel::V5, *connack);
  EXPECT_EQ(rewritten, hex("20 13 00 00 10 21 00 14 26 00 01 61 00 01 62 12 00 03 61 62 63"));
  const auto again = decodeConnack(ProtocolLevel::V5, rewritten);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *connack);
  EXPECT_EQ(again->properties.findString(property::kAssignedClientIdentifier), "abc");
}

TEST(Replies, ConnackV5SessionPresentAndEmptyProperties) {
  const auto bytes = hex("20 03 01 00 00");
  const auto connack = decodeConnack(ProtocolLevel::V5, bytes);
  ASSERT_TRUE(connack.has_value());
  EXPECT_TRUE(connack->session_present);
  EXPECT_TRUE(connack->properties.empty());
  EXPECT_EQ(encodeConnack(ProtocolLevel::V5, *connack), bytes);
}

TEST(Replies, ConnackV5Malformed) {
  for (const char* bad : {
           "20 02 00 00",                    // no property length
           "20 03 02 00 00",                 // reserved acknowledge flag
           "21 03 00 00 00",                 // fixed header flags
           "30 03 00 00 00",                 // not a CONNACK
           "20 04 00 00 00 00",              // bytes after the properties
           "20 05 00 00 02 17 01",           // request problem information: not a CONNACK property
           "20 05 00 00 02 7f 01",           // undefined property
           "20 08 00 00 05 12 00 05 61 62",  // property overruns its length
           "20 09 00 00 06 24 01 24 00 25 01",  // maximum QoS twice
           "20 05 00 00 02 24 02",              // maximum QoS 2 is not a valid value
           "20 04 00 00 00",                    // frame shorter than its Remaining Length
           "",
       }) {
    EXPECT_FALSE(decodeConnack(ProtocolLevel::V5, hex(bad)).has_value()) << bad;
  }
}

TEST(Replies, ConnackV3) {
  for (auto level : {ProtocolLevel::V31, ProtocolLevel::V311}) {
    const auto accepted = decodeConnack(level, hex("20 02 01 00"));
    ASSERT_TRUE(accepted.has_value());
    EXPECT_TRUE(accepted->session_present);
    EXPECT_EQ(accepted->reason_code, 0);
    EXPECT_EQ(encodeConnack(level, *accepted), hex("20 02 01 00"));
    const auto refused = decodeConnack(level, hex("20 02 00 05"));
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->reason_code, 5);
    EXPECT_FALSE(decodeConnack(level, hex("20 02 02 00")).has_value());
    EXPECT_FALSE(decodeConnack(level, hex("20 03 00 00 00")).has_value());
    EXPECT_FALSE(decodeConnack(level, hex("20 01 00")).has_value());
    EXPECT_FALSE(decodeConnack(level, hex("22 02 00 00")).has_value());
  }
}

TEST(Replies, RefusalNames) {
  EXPECT_EQ(refusalName(Refusal::Malformed), "malformed");
  EXPECT_EQ(refusalName(Refusal::UnsupportedVersion), "unsupported_version");
  EXPECT_EQ(refusalName(Refusal::BadAuthMethod), "bad_auth_method");
  EXPECT_EQ(refusalName(Refusal::PacketTooLarge), "packet_too_large");
}

TEST(Replies, Disconnect) {
  EXPECT_EQ(encodeDisconnect(0x95), hex("e0 02 95 00"));
  EXPECT_EQ(encodeDisconnect(0x00), hex("e0 02 00 00"));
  EXPECT_EQ(encodeDisconnect(0x81), hex("e0 02 81 00"));
}

// Broker CONNACK: success, Receive Maximum 20, Reason String "ok", User Property (a, b).
const char* const kBrokerConnack = "20 12 00 00 0f 21 00 14 1f 00 02 6f 6b 26 00 01 61 00 01 62";

TEST(Replies, AddAssignedClientIdWithoutLimit) {
  EXPECT_EQ(addAssignedClientId(hex(kBrokerConnack), "abc", 0),
            hex("20 18 00 00 15 21 00 14 1f 00 02 6f 6b 26 00 01 61 00 01 62 12 00 03 61 62 63"));
  EXPECT_EQ(addAssignedClientId(hex("20 03 01 00 00"), "abc", 0),
            hex("20 09 01 00 06 12 00 03 61 62 63"));
}

TEST(Replies, AddAssignedClientIdDropsReasonStringThenUserPropertiesToFit) {
  // Whole: 26 bytes. Without the Reason String: 21. Without the User Property too: 14.
  EXPECT_EQ(addAssignedClientId(hex(kBrokerConnack), "abc", 26).size(), 26u);
  EXPECT_EQ(addAssignedClientId(hex(kBrokerConnack), "abc", 25),
            hex("20 13 00 00 10 21 00 14 26 00 01 61 00 01 62 12 00 03 61 62 63"));
  EXPECT_EQ(addAssignedClientId(hex(kBrokerConnack), "abc", 21).size(), 21u);
  EXPECT_EQ(addAssignedClientId(hex(kBrokerConnack), "abc", 20),
            hex("20 0c 00 00 09 21 00 14 12 00 03 61 62 63"));
  // Still too large: the smallest form anyway; the caller decides.
  EXPECT_EQ(addAssignedClientId(hex(kBrokerConnack), "abc", 5),
            hex("20 0c 00 00 09 21 00 14 12 00 03 61 62 63"));
}

TEST(Replies, AddAssignedClientIdLeavesSomeConnacksUnchanged) {
  const std::vector<std::uint8_t> unchanged;
  // A refusal, a CONNACK that already assigns an identifier, one that does not decode.
  EXPECT_EQ(addAssignedClientId(hex("20 03 00 87 00"), "abc", 0), unchanged);
  EXPECT_EQ(addAssignedClientId(hex("20 03 00 80 00"), "abc", 0), unchanged);
  EXPECT_EQ(addAssignedClientId(hex("20 09 00 00 06 12 00 03 78 79 7a"), "abc", 0), unchanged);
  EXPECT_EQ(addAssignedClientId(hex("20 02 00 00"), "abc", 0), unchanged);
  EXPECT_EQ(addAssignedClientId(hex("20 03 00 00"), "abc", 0), unchanged);
  EXPECT_EQ(addAssignedClientId({}, "abc", 0), unchanged);
  EXPECT_EQ(addAssignedClientId(hex("20 03 00 00 00"), std::string(65536, 'c'), 0), unchanged);
}

}  // namespace
}  // namespace mqtls::mqtt

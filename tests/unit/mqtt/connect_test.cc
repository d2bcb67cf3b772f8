#include "mqtt/connect.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "connect_samples.h"
#include "mqtt/framer.h"

namespace mqtls::mqtt {
namespace {

using mqtls::test::hex;

struct Sample {
  const char* name;
  std::vector<std::uint8_t> bytes;
  ConnectPacket expected;
};

std::vector<Sample> samples() {
  return {{"3.1", test::connect31(), test::expected31()},
          {"3.1.1", test::connect311(), test::expected311()},
          {"5.0", test::connect5(), test::expected5()}};
}

TEST(Connect, DecodesSpecExamples) {
  for (const auto& sample : samples()) {
    const ConnectDecodeResult result = decodeConnect(sample.bytes);
    ASSERT_TRUE(result.ok()) << sample.name << ": " << result.error.detail;
    EXPECT_EQ(*result.packet, sample.expected) << sample.name;
  }
}

TEST(Connect, DecodedFieldsOf311) {
  const auto result = decodeConnect(test::connect311());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.packet->level, ProtocolLevel::V311);
  EXPECT_FALSE(result.packet->bridge);
  EXPECT_TRUE(result.packet->clean_start);
  EXPECT_EQ(result.packet->keep_alive, 60);
  EXPECT_EQ(result.packet->client_id, "clid");
  EXPECT_FALSE(result.packet->will.has_value());
  EXPECT_FALSE(result.packet->username.has_value());
  EXPECT_FALSE(result.packet->password.has_value());
  EXPECT_TRUE(result.packet->properties.empty());
}

TEST(Connect, V5WillPropertiesAndUserPropertiesInOrder) {
  const auto result = decodeConnect(test::connect5());
  ASSERT_TRUE(result.ok()) << result.error.detail;
  const ConnectPacket& p = *result.packet;
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(p.properties.userProperties(), (Pairs{{"k", "v"}, {"a", "b"}}));
  ASSERT_TRUE(p.will.has_value());
  EXPECT_EQ(p.will->properties.userProperties(), (Pairs{{"x", "y"}}));
  EXPECT_EQ(p.will->properties.findString(property::kContentType), "text/plain");
  EXPECT_EQ(p.will->qos, 2);
  EXPECT_FALSE(p.will->retain);
  EXPECT_EQ(p.will->payload, std::string("\x00\xff\x01", 3));
  EXPECT_EQ(p.password, std::string("p\x00w", 3));
}

TEST(Connect, ReencodesCanonicalInputExactly) {
  for (const auto& sample : samples()) {
    const auto decoded = decodeConnect(sample.bytes);
    ASSERT_TRUE(decoded.ok()) << sample.name;
    const auto encoded = encodeConnect(*decoded.packet);
    ASSERT_TRUE(encoded.has_value()) << sample.name;
    EXPECT_EQ(*encoded, sample.bytes) << sample.name;
  }
}

TEST(Connect, DecodeOfEncodeIsIdentity) {
  for (auto sample : samples()) {
    ConnectPacket p = sample.expected;
    p.clean_start = false;
    p.keep_alive = 65'535;
    p.client_id = std::string(300, 'c');  // two-byte Remaining Length
    const auto encoded = encodeConnect(p);
    ASSERT_TRUE(encoded.has_value()) << sample.name;
    const auto decoded = decodeConnect(*encoded);
    ASSERT_TRUE(decoded.ok()) << sample.name << ": " << decoded.error.detail;
    EXPECT_EQ(*decoded.packet, p) << sample.name;
  }
}

TEST(Connect, FedByteByByteThroughTheFramer) {
  for (const auto& sample : samples()) {
    std::vector<std::uint8_t> buffered;
    FrameResult frame;
    for (std::uint8_t byte : sample.bytes) {
      ASSERT_NE(frame.status, FrameStatus::Frame) << sample.name;
      buffered.push_back(byte);
      frame = peekFrame(buffered, 1024);
      ASSERT_NE(frame.status, FrameStatus::Error) << sample.name;
    }
    ASSERT_EQ(frame.status, FrameStatus::Frame) << sample.name;
    EXPECT_EQ(frame.type, PacketType::Connect);
    EXPECT_EQ(frame.totalSize(), sample.bytes.size());
    const auto decoded = decodeConnect(std::span(buffered).first(frame.totalSize()));
    ASSERT_TRUE(decoded.ok()) << sample.name;
    EXPECT_EQ(*decoded.packet, sample.expected) << sample.name;
  }
}

TEST(Connect, BridgeBitRoundTrips) {
  auto bytes = test::connect311();
  bytes[8] = 0x84;
  const auto decoded = decodeConnect(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.error.detail;
  EXPECT_TRUE(decoded.packet->bridge);
  EXPECT_EQ(decoded.packet->level, ProtocolLevel::V311);
  EXPECT_EQ(encodeConnect(*decoded.packet), bytes);

  ConnectPacket p = test::expected5();
  p.bridge = true;
  const auto encoded = encodeConnect(p);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ((*encoded)[8], 0x85);
  EXPECT_EQ(decodeConnect(*encoded).packet, p);
}

TEST(Connect, NonMinimalRemainingLengthDecodes) {
  auto bytes = test::connect311();
  bytes.erase(bytes.begin() + 1);
  bytes.insert(bytes.begin() + 1, {0x90, 0x00});  // 16 as two bytes
  const auto decoded = decodeConnect(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.error.detail;
  EXPECT_EQ(*decoded.packet, test::expected311());
  EXPECT_EQ(encodeConnect(*decoded.packet), test::connect311());  // re-encoded minimally
}

TEST(Connect, V5PasswordWithoutUserNameIsLegal) {
  ConnectPacket p = test::expected5();
  p.username.reset();
  const auto encoded = encodeConnect(p);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ((*encoded)[9] & 0xC0, 0x40);
  const auto decoded = decodeConnect(*encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.error.detail;
  EXPECT_EQ(*decoded.packet, p);
}

TEST(Connect, EmptyClientIdAndEmptyStrings) {
  ConnectPacket p;
  p.level = ProtocolLevel::V5;
  p.username = "";
  p.password = "";
  p.will.emplace();
  const auto encoded = encodeConnect(p);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ(*encoded, hex("10 16 00 04 4d 51 54 54 05 c6"
                          "00 00 00 00 00 00 00 00 00 00 00 00 00 00"));
  EXPECT_EQ(decodeConnect(*encoded).packet, p);
}

TEST(Connect, EncodeFlagsFromFields) {
  ConnectPacket p = test::expected311();
  p.clean_start = false;
  p.will.emplace();
  p.will->qos = 2;
  p.will->retain = true;
  p.username = "u";
  const auto encoded = encodeConnect(p);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ((*encoded)[9], 0x80 | 0x20 | 0x10 | 0x04);
}

TEST(Connect, EncodeRefusesOversizedFields) {
  ConnectPacket p = test::expected311();
  p.client_id = std::string(65'535, 'c');
  EXPECT_TRUE(encodeConnect(p).has_value());
  p.client_id.push_back('c');
  EXPECT_FALSE(encodeConnect(p).has_value());

  p = test::expected31();
  p.password = std::string(65'536, 'p');
  EXPECT_FALSE(encodeConnect(p).has_value());
  p = test::expected31();
  p.will->payload = std::string(65'536, 'w');
  EXPECT_FALSE(encodeConnect(p).has_value());
  p = test::expected31();
  p.will->qos = 3;
  EXPECT_FALSE(encodeConnect(p).has_value());
}

TEST(Connect, EncodeWritesPropertyLengthsAsVarints) {
  ConnectPacket p = test::expected5();
  for (int i = 0; i < 20; ++i) {
    p.properties.addUserProperty("name", "value");  // 14 bytes each: 2-byte property length
  }
  const auto encoded = encodeConnect(p);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ((*encoded)[1] & 0x80, 0x80);  // Remaining Length also needs two bytes
  EXPECT_EQ((*encoded)[13], 0x80 | ((22 + 20 * 14) & 0x7F));
  EXPECT_EQ((*encoded)[14], (22 + 20 * 14) >> 7);
  const auto decoded = decodeConnect(*encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.error.detail;
  EXPECT_EQ(*decoded.packet, p);
}

TEST(Connect, V3IgnoresPropertiesWhenEncoding) {
  ConnectPacket p = test::expected311();
  p.properties.addUserProperty("k", "v");
  EXPECT_EQ(encodeConnect(p), test::connect311());
}

}  // namespace
}  // namespace mqtls::mqtt

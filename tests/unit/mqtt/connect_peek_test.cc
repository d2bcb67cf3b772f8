// peekConnectLevel over CONNECT prefixes arriving byte by byte, and maximumPacketSize.
#include "mqtt/connect_peek.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

#include "hex.h"
#include "mqtt/framer.h"

namespace mqtls::mqtt {
namespace {

using mqtls::test::hex;

// Status after each prefix of `bytes`, with header_size as peekFrame reports it.
std::vector<ConnectLevelPeek> peekEveryPrefix(const std::vector<std::uint8_t>& bytes) {
  std::vector<ConnectLevelPeek> out;
  for (std::size_t n = 0; n <= bytes.size(); ++n) {
    const auto prefix = std::span(bytes).first(n);
    const FrameResult frame = peekFrame(prefix, 1u << 30);
    out.push_back(peekConnectLevel(prefix, frame.header_size));
  }
  return out;
}

// NeedMore up to (not including) `known_at` bytes, then Known with `level` for every longer prefix.
void expectKnownAt(const std::vector<std::uint8_t>& bytes, std::size_t known_at,
                   ProtocolLevel level) {
  const auto peeks = peekEveryPrefix(bytes);
  for (std::size_t n = 0; n < peeks.size(); ++n) {
    if (n < known_at) {
      EXPECT_EQ(peeks[n].status, LevelPeek::NeedMore) << n;
    } else {
      EXPECT_EQ(peeks[n].status, LevelPeek::Known) << n;
      EXPECT_EQ(peeks[n].level, level) << n;
    }
  }
}

TEST(ConnectPeek, KnownOnceTheLevelByteArrives) {
  // Fixed header 2 bytes + name length 2 + "MQTT" 4 + level 1 = 9.
  expectKnownAt(hex("10 10 00 04 4d 51 54 54 04 02 00 3c 00 04 63 6c 69 64"), 9,
                ProtocolLevel::V311);
  expectKnownAt(hex("10 11 00 04 4d 51 54 54 05 02 00 3c 00 00 04 63 6c 69 64"), 9,
                ProtocolLevel::V5);
  expectKnownAt(hex("10 12 00 06 4d 51 49 73 64 70 03 02 00 3c 00 04 63 6c 69 64"), 11,
                ProtocolLevel::V31);
  // Bridge bit masked.
  expectKnownAt(hex("10 10 00 04 4d 51 54 54 84 02 00 3c 00 04 63 6c 69 64"), 9,
                ProtocolLevel::V311);
}

TEST(ConnectPeek, LevelAfterAMultiByteFixedHeader) {
  // An oversized CONNECT: Remaining Length 200,000 (3 bytes), only its start buffered.
  const auto bytes = hex("10 c0 9a 0c 00 04 4d 51 54 54 05 02");
  expectKnownAt(bytes, 11, ProtocolLevel::V5);
}

TEST(ConnectPeek, UnknownNamesAndLevels) {
  for (const char* text : {
           "10 10 00 04 4d 51 54 58 04",        // "MQTX"
           "10 10 00 04 4d 51 54 54 03",        // MQTT level 3
           "10 10 00 04 4d 51 54 54 06",        // MQTT level 6
           "10 10 00 06 4d 51 49 73 64 70 04",  // MQIsdp level 4
           "10 10 00 06 4d 51 54 54 00 00 05",  // six bytes that are not MQIsdp
           "30 10 00 04 4d 51 54 54 04",        // a PUBLISH, not a CONNECT
           "10 04 00 04 4d 51 54 54 04",        // name and level do not fit the packet
       }) {
    const auto bytes = hex(text);
    const FrameResult frame = peekFrame(bytes, 1u << 30);
    EXPECT_EQ(peekConnectLevel(bytes, frame.header_size).status, LevelPeek::Unknown) << text;
  }
}

TEST(ConnectPeek, ImpossibleNameLengthIsUnknownAtOnce) {
  // A name longer than 6 bytes cannot be MQTT or MQIsdp: no need to wait for it.
  EXPECT_EQ(peekConnectLevel(hex("10 ff 7f 00 07"), 3).status, LevelPeek::Unknown);
  EXPECT_EQ(peekConnectLevel(hex("10 ff 7f ff ff"), 3).status, LevelPeek::Unknown);
  EXPECT_EQ(peekConnectLevel(hex("10 ff 7f 00 00"), 3).status, LevelPeek::Unknown);
  EXPECT_EQ(peekConnectLevel(hex("10 ff 7f 00"), 3).status, LevelPeek::NeedMore);
}

TEST(ConnectPeek, IncompleteFixedHeaderIsNeedMore) {
  EXPECT_EQ(peekConnectLevel({}, 0).status, LevelPeek::NeedMore);
  EXPECT_EQ(peekConnectLevel(hex("10"), 0).status, LevelPeek::NeedMore);
  EXPECT_EQ(peekConnectLevel(hex("10 80"), 0).status, LevelPeek::NeedMore);
  // A header size the buffer does not hold yet.
  EXPECT_EQ(peekConnectLevel(hex("10 80"), 3).status, LevelPeek::NeedMore);
}

TEST(ConnectPeek, MaximumPacketSize) {
  ConnectPacket connect;
  connect.level = ProtocolLevel::V5;
  EXPECT_EQ(maximumPacketSize(connect), 0u);
  connect.properties.items().push_back(
      {property::kMaximumPacketSize, std::string("\x00\x01\x02\x03", 4)});
  EXPECT_EQ(maximumPacketSize(connect), 0x00010203u);
  connect.properties.items().back().raw = std::string("\xff\xff\xff\xfe", 4);
  EXPECT_EQ(maximumPacketSize(connect), 0xfffffffeu);
  connect.level = ProtocolLevel::V311;
  EXPECT_EQ(maximumPacketSize(connect), 0u);
}

TEST(ConnectPeek, MaximumPacketSizeFromADecodedConnect) {
  const auto decoded =
      decodeConnect(hex("10 16 00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 01 00 00 04 63 6c 69 64"));
  ASSERT_TRUE(decoded.ok()) << decoded.error.detail;
  EXPECT_EQ(maximumPacketSize(*decoded.packet), 256u);
}

}  // namespace
}  // namespace mqtls::mqtt

#include "mqtt/framer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "hex.h"

namespace mqtls::mqtt {
namespace {

using mqtls::test::concat;
using mqtls::test::hex;

constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

FrameResult peek(const std::vector<std::uint8_t>& bytes, std::size_t count,
                 std::size_t max = kNoLimit) {
  return peekFrame(std::span(bytes.data(), count), max);
}

TEST(Framer, EmptyBufferNeedsMore) {
  EXPECT_EQ(peekFrame({}, 100).status, FrameStatus::NeedMore);
}

TEST(Framer, ByteByByteNeedsMoreUntilTheLastByte) {
  const auto publish = hex("32 07 00 01 74 00 2a 68 69");  // QoS 1 PUBLISH "t", id 42, "hi"
  for (std::size_t count = 0; count < publish.size(); ++count) {
    EXPECT_EQ(peek(publish, count).status, FrameStatus::NeedMore) << "prefix " << count;
  }
  const FrameResult frame = peek(publish, publish.size());
  ASSERT_EQ(frame.status, FrameStatus::Frame);
  EXPECT_EQ(frame.error, FrameError::None);
  EXPECT_EQ(frame.type, PacketType::Publish);
  EXPECT_EQ(frame.flags, 0x02);
  EXPECT_EQ(frame.header_size, 2u);
  EXPECT_EQ(frame.remaining_length, 7u);
  EXPECT_EQ(frame.totalSize(), publish.size());
}

TEST(Framer, HeaderSizesAreKnownBeforeTheBody) {
  const auto publish = hex("30 80 01");  // 128-byte body, none of it buffered
  EXPECT_EQ(peek(publish, 2).header_size, 0u);
  const FrameResult header = peek(publish, 3);
  EXPECT_EQ(header.status, FrameStatus::NeedMore);
  EXPECT_EQ(header.header_size, 3u);
  EXPECT_EQ(header.remaining_length, 128u);
  EXPECT_EQ(header.totalSize(), 131u);
}

TEST(Framer, TwoFramesInOneBuffer) {
  const auto buffer = concat(hex("c0 00"), hex("82 06 00 01 00 01 23 01"));  // PINGREQ, SUBSCRIBE
  const FrameResult first = peek(buffer, buffer.size());
  ASSERT_EQ(first.status, FrameStatus::Frame);
  EXPECT_EQ(first.type, PacketType::Pingreq);
  EXPECT_EQ(first.totalSize(), 2u);
  const FrameResult second = peekFrame(std::span(buffer).subspan(first.totalSize()), kNoLimit);
  ASSERT_EQ(second.status, FrameStatus::Frame);
  EXPECT_EQ(second.type, PacketType::Subscribe);
  EXPECT_EQ(second.flags, 0x02);
  EXPECT_EQ(second.totalSize(), 8u);
}

struct VarintCase {
  std::uint32_t value;
  std::vector<std::uint8_t> encoded;
};

TEST(Framer, RemainingLengthBoundaries) {
  const std::vector<VarintCase> cases = {
      {0, hex("00")},
      {127, hex("7f")},
      {128, hex("80 01")},
      {16'383, hex("ff 7f")},
      {16'384, hex("80 80 01")},
      {2'097'151, hex("ff ff 7f")},
      {2'097'152, hex("80 80 80 01")},
      {268'435'455, hex("ff ff ff 7f")},
  };
  for (const auto& c : cases) {
    std::uint8_t out[4] = {};
    const std::size_t written = encodeRemainingLength(c.value, out);
    ASSERT_EQ(written, c.encoded.size()) << c.value;
    EXPECT_EQ(std::vector<std::uint8_t>(out, out + written), c.encoded) << c.value;

    const auto header = concat(hex("30"), c.encoded);
    const std::size_t total = header.size() + c.value;
    // Exactly at the limit: accepted, waiting for the body (or complete when empty).
    const FrameResult fits = peek(header, header.size(), total);
    EXPECT_EQ(fits.status, c.value == 0 ? FrameStatus::Frame : FrameStatus::NeedMore) << c.value;
    // One byte under the limit: refused with the sizes it read.
    const FrameResult over = peek(header, header.size(), total - 1);
    EXPECT_EQ(over.status, FrameStatus::Error) << c.value;
    EXPECT_EQ(over.error, FrameError::TooLarge) << c.value;
    EXPECT_EQ(over.header_size, header.size()) << c.value;
    EXPECT_EQ(over.remaining_length, c.value) << c.value;
  }
  std::uint8_t out[4] = {};
  EXPECT_EQ(encodeRemainingLength(268'435'456, out), 0u);
}

TEST(Framer, LargeFrameIsFoundWhenComplete) {
  std::vector<std::uint8_t> packet = hex("30 80 80 80 01");
  packet.resize(packet.size() + 2'097'152, 0x41);
  EXPECT_EQ(peek(packet, packet.size() - 1).status, FrameStatus::NeedMore);
  const FrameResult frame = peek(packet, packet.size());
  ASSERT_EQ(frame.status, FrameStatus::Frame);
  EXPECT_EQ(frame.header_size, 5u);
  EXPECT_EQ(frame.remaining_length, 2'097'152u);
}

TEST(Framer, FifthLengthByteIsMalformed) {
  for (const auto& bytes :
       {hex("30 ff ff ff ff 7f"), hex("30 80 80 80 80 01"), hex("30 80 80 80 80")}) {
    const FrameResult frame = peek(bytes, bytes.size());
    EXPECT_EQ(frame.status, FrameStatus::Error);
    EXPECT_EQ(frame.error, FrameError::MalformedLength);
  }
  // Four continuation bytes are only known to be malformed once the fourth is there.
  const auto prefix = hex("30 80 80 80");
  EXPECT_EQ(peek(prefix, prefix.size()).status, FrameStatus::NeedMore);
}

TEST(Framer, NonMinimalLengthIsAccepted) {
  const auto bytes = hex("c0 80 00");
  const FrameResult frame = peek(bytes, bytes.size());
  ASSERT_EQ(frame.status, FrameStatus::Frame);
  EXPECT_EQ(frame.header_size, 3u);
  EXPECT_EQ(frame.remaining_length, 0u);
}

TEST(Framer, TooLargeBeforeTheBodyArrives) {
  const auto header = hex("10 ff 7f");  // CONNECT of 16,383 + 3 bytes, nothing of the body yet
  const FrameResult frame = peek(header, header.size(), 1024);
  EXPECT_EQ(frame.status, FrameStatus::Error);
  EXPECT_EQ(frame.error, FrameError::TooLarge);
  EXPECT_EQ(frame.type, PacketType::Connect);
  EXPECT_EQ(frame.header_size, 3u);
  EXPECT_EQ(frame.remaining_length, 16'383u);
  EXPECT_EQ(frame.totalSize(), 16'386u);
}

TEST(Framer, LimitCountsTheFixedHeader) {
  const auto pingreq = hex("c0 00");
  EXPECT_EQ(peek(pingreq, 2, 2).status, FrameStatus::Frame);
  EXPECT_EQ(peek(pingreq, 2, 1).error, FrameError::TooLarge);
  EXPECT_EQ(peek(pingreq, 2, 0).error, FrameError::TooLarge);
}

TEST(Framer, ReservedTypeIsAnError) {
  for (const auto& bytes : {hex("00 00"), hex("0f 02 00 00"), hex("00")}) {
    const FrameResult frame = peek(bytes, bytes.size());
    EXPECT_EQ(frame.status, FrameStatus::Error);
    EXPECT_EQ(frame.error, FrameError::ReservedType);
  }
}

TEST(Framer, FlagsAreNotValidated) {
  const auto bytes = hex("1f 00");  // CONNECT with non-zero flags: decodeConnect's concern
  const FrameResult frame = peek(bytes, bytes.size());
  ASSERT_EQ(frame.status, FrameStatus::Frame);
  EXPECT_EQ(frame.type, PacketType::Connect);
  EXPECT_EQ(frame.flags, 0x0F);
}

TEST(Framer, ErrorNames) {
  EXPECT_EQ(frameErrorName(FrameError::None), "none");
  EXPECT_EQ(frameErrorName(FrameError::MalformedLength), "malformed_length");
  EXPECT_EQ(frameErrorName(FrameError::TooLarge), "too_large");
  EXPECT_EQ(frameErrorName(FrameError::ReservedType), "reserved_type");
}

}  // namespace
}  // namespace mqtls::mqtt

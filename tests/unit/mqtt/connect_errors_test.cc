// Every way a CONNECT can be refused, with the refusal and the level the client is answered at.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "connect_samples.h"
#include "mqtt/connect.h"

namespace mqtls::mqtt {
namespace {

using mqtls::test::concat;
using mqtls::test::hex;

std::vector<std::uint8_t> frameOf(const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> out = {0x10};
  std::uint32_t length = static_cast<std::uint32_t>(body.size());
  do {
    std::uint8_t byte = length & 0x7F;
    length >>= 7;
    out.push_back(length != 0 ? (byte | 0x80) : byte);
  } while (length != 0);
  return concat(out, body);
}

// A CONNECT with the "MQTT" name and the given level byte; `rest` starts at the connect flags.
std::vector<std::uint8_t> mqtt(std::uint8_t level, std::string_view rest) {
  return frameOf(concat(concat(hex("00 04 4d 51 54 54"), {level}), hex(rest)));
}
std::vector<std::uint8_t> v311(std::string_view rest) {
  return mqtt(4, rest);
}
std::vector<std::uint8_t> v5(std::string_view rest) {
  return mqtt(5, rest);
}
std::vector<std::uint8_t> v31(std::string_view rest) {
  return frameOf(concat(hex("00 06 4d 51 49 73 64 70 03"), hex(rest)));
}

void expectRefused(const std::vector<std::uint8_t>& bytes, Refusal refusal,
                   std::optional<ProtocolLevel> level) {
  const ConnectDecodeResult result = decodeConnect(bytes);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error.refusal, refusal) << result.error.detail;
  EXPECT_EQ(result.error.level, level) << result.error.detail;
  EXPECT_FALSE(result.error.detail.empty());
}

void expectAccepted(const std::vector<std::uint8_t>& bytes) {
  const ConnectDecodeResult result = decodeConnect(bytes);
  EXPECT_TRUE(result.ok()) << result.error.detail;
}

constexpr auto V31 = ProtocolLevel::V31;
constexpr auto V311 = ProtocolLevel::V311;
constexpr auto V5 = ProtocolLevel::V5;

TEST(ConnectErrors, HelpersBuildValidPackets) {
  expectAccepted(v311("02 00 3c 00 01 61"));
  expectAccepted(v31("02 00 3c 00 01 61"));
  expectAccepted(v5("02 00 3c 00 00 01 61"));
  EXPECT_EQ(v311("02 00 3c 00 04 63 6c 69 64"), test::connect311());
}

TEST(ConnectErrors, FixedHeader) {
  auto bytes = test::connect311();
  bytes[0] = 0x30;
  expectRefused(bytes, Refusal::ProtocolError, std::nullopt);
  // The frame must be exactly the fixed header plus Remaining Length.
  bytes = test::connect311();
  bytes.push_back(0x00);
  expectRefused(bytes, Refusal::Malformed, std::nullopt);
  bytes = test::connect311();
  bytes.pop_back();
  expectRefused(bytes, Refusal::Malformed, std::nullopt);
  expectRefused(hex("10 ff ff ff ff 01"), Refusal::Malformed, std::nullopt);
  expectRefused({}, Refusal::Malformed, std::nullopt);
}

// Reserved fixed-header flags are Malformed, answered in the level the variable header gives
// (so an MQTT 5 client gets CONNACK 0x81); with no known level, silence.
TEST(ConnectErrors, FixedHeaderFlagsReportTheLevel) {
  for (std::uint8_t first = 0x11; first <= 0x1F; ++first) {
    auto bytes = v5("02 00 3c 00 00 01 61");
    bytes[0] = first;
    expectRefused(bytes, Refusal::Malformed, V5);
    bytes = v311("02 00 3c 00 01 61");
    bytes[0] = first;
    expectRefused(bytes, Refusal::Malformed, V311);
    bytes = v31("02 00 3c 00 01 61");
    bytes[0] = first;
    expectRefused(bytes, Refusal::Malformed, V31);
  }
  auto unknown = mqtt(6, "02 00 3c 00 01 61");
  unknown[0] = 0x12;
  expectRefused(unknown, Refusal::Malformed, std::nullopt);
  auto short_body = frameOf(hex("00 04 4d 51"));
  short_body[0] = 0x12;
  expectRefused(short_body, Refusal::Malformed, std::nullopt);
}

TEST(ConnectErrors, ProtocolNameAndLevel) {
  expectRefused(frameOf(hex("00 04 4d 51 54 58 04 02 00 3c 00 01 61")), Refusal::ProtocolError,
                std::nullopt);
  expectRefused(frameOf(hex("00 06 4d 51 49 73 64 70 04 02 00 3c 00 01 61")),
                Refusal::UnsupportedVersion, V31);
  expectRefused(mqtt(3, "02 00 3c 00 01 61"), Refusal::UnsupportedVersion, V311);
  expectRefused(mqtt(6, "02 00 3c 00 01 61"), Refusal::UnsupportedVersion, V311);
  expectRefused(mqtt(0x86, "02 00 3c 00 01 61"), Refusal::UnsupportedVersion, V311);
  expectRefused(frameOf(hex("00 04 4d 51")), Refusal::Malformed, std::nullopt);
  expectRefused(frameOf(hex("00 04 4d 51 54 54")), Refusal::Malformed, std::nullopt);
}

TEST(ConnectErrors, ReservedConnectFlag) {
  expectRefused(v311("03 00 3c 00 01 61"), Refusal::Malformed, V311);
  expectRefused(v31("03 00 3c 00 01 61"), Refusal::Malformed, V31);
  expectRefused(v5("03 00 3c 00 00 01 61"), Refusal::Malformed, V5);
}

TEST(ConnectErrors, WillQosAndRetain) {
  // Will QoS 3.
  expectRefused(v311("1e 00 3c 00 01 61 00 01 74 00 00"), Refusal::Malformed, V311);
  expectRefused(v5("1e 00 3c 00 00 01 61 00 00 01 74 00 00"), Refusal::Malformed, V5);
  // Will QoS or retain without the will flag.
  expectRefused(v311("0a 00 3c 00 01 61"), Refusal::Malformed, V311);
  expectRefused(v311("12 00 3c 00 01 61"), Refusal::Malformed, V311);
  expectRefused(v311("22 00 3c 00 01 61"), Refusal::Malformed, V311);
  expectRefused(v5("22 00 3c 00 00 01 61"), Refusal::Malformed, V5);
}

TEST(ConnectErrors, PasswordWithoutUserName) {
  expectRefused(v311("42 00 3c 00 01 61 00 01 70"), Refusal::ProtocolError, V311);
  expectRefused(v31("42 00 3c 00 01 61 00 01 70"), Refusal::ProtocolError, V31);
  expectAccepted(v5("42 00 3c 00 00 01 61 00 01 70"));
}

TEST(ConnectErrors, InvalidUtf8) {
  for (const char* bad : {"00 02 c0 80", "00 03 ed a0 80", "00 01 00", "00 01 ff", "00 02 61 80",
                          "00 02 e2 82", "00 04 f4 90 80 80"}) {
    expectRefused(v311(std::string("02 00 3c ") + bad), Refusal::Malformed, V311);
    expectRefused(v5(std::string("02 00 3c 00 ") + bad), Refusal::Malformed, V5);
  }
  // Well-formed multi-byte characters are fine: U+00E9, U+20AC, U+1F600.
  expectAccepted(v311("02 00 3c 00 09 c3 a9 e2 82 ac f0 9f 98 80"));
  // Will topic, user name and string properties are checked too.
  expectRefused(v311("06 00 3c 00 01 61 00 01 ff 00 00"), Refusal::Malformed, V311);
  expectRefused(v311("82 00 3c 00 01 61 00 01 00"), Refusal::Malformed, V311);
  expectRefused(v5("02 00 3c 05 15 00 02 c0 80 00 01 61"), Refusal::Malformed, V5);
  expectRefused(v5("02 00 3c 07 26 00 01 61 00 01 ff 00 01 61"), Refusal::Malformed, V5);
  // Binary fields are not: will payload and password may hold any bytes.
  expectAccepted(v311("c6 00 3c 00 01 61 00 01 74 00 02 00 ff 00 01 75 00 02 ff 00"));
}

TEST(ConnectErrors, TruncatedFields) {
  expectRefused(v311("02"), Refusal::Malformed, V311);
  expectRefused(v311("02 00"), Refusal::Malformed, V311);
  expectRefused(v311("02 00 3c"), Refusal::Malformed, V311);
  expectRefused(v311("02 00 3c 00 05 61"), Refusal::Malformed, V311);
  expectRefused(v311("06 00 3c 00 01 61 00 01 74"), Refusal::Malformed, V311);
  expectRefused(v311("82 00 3c 00 01 61"), Refusal::Malformed, V311);
  expectRefused(v311("c2 00 3c 00 01 61 00 01 75 00 09"), Refusal::Malformed, V311);
  expectRefused(v5("02 00 3c"), Refusal::Malformed, V5);
  expectRefused(v5("02 00 3c 05 11 00 00 00 78"), Refusal::Malformed, V5);
  expectRefused(v5("02 00 3c 09 11 00 00 00 78 00 01 61"), Refusal::Malformed, V5);
  expectRefused(v5("02 00 3c 80 80 80 80 01"), Refusal::Malformed, V5);
  expectRefused(v5("06 00 3c 00 00 01 61 05 18 00 00"), Refusal::Malformed, V5);
}

TEST(ConnectErrors, BytesAfterThePayload) {
  expectRefused(v311("02 00 3c 00 01 61 00"), Refusal::Malformed, V311);
  expectRefused(v31("02 00 3c 00 01 61 ff ff"), Refusal::Malformed, V31);
  expectRefused(v5("02 00 3c 00 00 01 61 00"), Refusal::Malformed, V5);
}

TEST(ConnectErrors, V5Properties) {
  // Defined but not allowed in CONNECT: Protocol Error.
  expectRefused(v5("02 00 3c 02 01 01 00 01 61"), Refusal::ProtocolError, V5);
  expectRefused(v5("02 00 3c 03 1f 00 00 00 01 61"), Refusal::ProtocolError, V5);
  // Not defined by the spec at all: Malformed.
  expectRefused(v5("02 00 3c 02 7f 00 00 01 61"), Refusal::Malformed, V5);
  expectRefused(v5("02 00 3c 02 00 00 00 01 61"), Refusal::Malformed, V5);
  // Given twice: Protocol Error, except user properties.
  expectRefused(v5("02 00 3c 0a 11 00 00 00 01 11 00 00 00 02 00 01 61"), Refusal::ProtocolError,
                V5);
  expectAccepted(v5("02 00 3c 0a 26 00 00 00 00 26 00 00 00 00 00 01 61"));
  // Authentication data needs an authentication method.
  expectRefused(v5("02 00 3c 04 16 00 01 aa 00 01 61"), Refusal::ProtocolError, V5);
  expectAccepted(v5("02 00 3c 09 16 00 01 aa 15 00 02 6d 31 00 01 61"));
  // Values the spec forbids.
  expectRefused(v5("02 00 3c 03 21 00 00 00 01 61"), Refusal::ProtocolError, V5);
  expectRefused(v5("02 00 3c 05 27 00 00 00 00 00 01 61"), Refusal::ProtocolError, V5);
  expectRefused(v5("02 00 3c 02 17 02 00 01 61"), Refusal::ProtocolError, V5);
  expectRefused(v5("02 00 3c 02 19 02 00 01 61"), Refusal::ProtocolError, V5);
  expectAccepted(v5("02 00 3c 04 17 00 19 01 00 01 61"));
}

TEST(ConnectErrors, V5WillProperties) {
  // Session expiry is a CONNECT property, not a will property.
  expectRefused(v5("06 00 3c 00 00 01 61 05 11 00 00 00 01 00 01 74 00 00"), Refusal::ProtocolError,
                V5);
  expectRefused(v5("06 00 3c 00 00 01 61 04 01 00 01 01 00 01 74 00 00"), Refusal::ProtocolError,
                V5);
  expectRefused(v5("06 00 3c 00 00 01 61 02 01 02 00 01 74 00 00"), Refusal::ProtocolError, V5);
  expectAccepted(v5("06 00 3c 00 00 01 61 05 09 00 02 00 ff 00 01 74 00 00"));
}

// Cutting a valid packet anywhere never crashes and never decodes: neither as a short frame, nor
// as a shorter packet whose Remaining Length was made to match.
TEST(ConnectErrors, TruncationAtEveryLength) {
  for (const auto& bytes : {test::connect31(), test::connect311(), test::connect5()}) {
    for (std::size_t length = 0; length < bytes.size(); ++length) {
      EXPECT_FALSE(decodeConnect(std::span(bytes).first(length)).ok()) << length;
    }
    const std::vector<std::uint8_t> body(bytes.begin() + 2, bytes.end());
    for (std::size_t length = 0; length < body.size(); ++length) {
      const auto frame = frameOf({body.begin(), body.begin() + static_cast<long>(length)});
      const auto result = decodeConnect(frame);
      EXPECT_FALSE(result.ok()) << length;
      if (length >= 9) {  // past the protocol name and level
        EXPECT_TRUE(result.error.level.has_value()) << length;
      }
    }
  }
}

}  // namespace
}  // namespace mqtls::mqtt

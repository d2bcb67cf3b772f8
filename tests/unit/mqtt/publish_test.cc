// rewritePublishV5: forged identity user properties removed, certificate ones appended, every
// other byte (topic, packet identifier, other properties, payload) kept, and bad frames refused.
#include "mqtt/publish.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hex.h"
#include "mqtt/framer.h"

namespace mqtls::mqtt {
namespace {

using mqtls::test::concat;
using mqtls::test::hex;

// A frame with this first byte around `body` (hex), Remaining Length computed.
std::vector<std::uint8_t> frame(std::uint8_t first, const std::vector<std::uint8_t>& body) {
  std::uint8_t length[4];
  const std::size_t size = encodeRemainingLength(static_cast<std::uint32_t>(body.size()), length);
  return concat(concat({first}, {length, length + size}), body);
}
std::vector<std::uint8_t> frame(std::uint8_t first, std::string_view body) {
  return frame(first, hex(body));
}

PublishStamp stamp(std::vector<std::string> strip,
                   std::vector<std::pair<std::string, std::string>> add) {
  return PublishStamp{std::move(strip), std::move(add)};
}

// The identity stamp most tests use: strip "x-cn", add ("x-cn", "dev").
const PublishStamp kIdentity = stamp({"x-cn"}, {{"x-cn", "dev"}});
// User property ("x-cn", "dev") on the wire.
constexpr const char* kStampedProperty = "26 00 04 78 2d 63 6e 00 03 64 65 76";
// User property ("x-cn", "adm"): a forgery.
constexpr const char* kForgedProperty = "26 00 04 78 2d 63 6e 00 03 61 64 6d";
// User property ("app", "1").
constexpr const char* kAppProperty = "26 00 03 61 70 70 00 01 31";

void expectRewritten(const std::vector<std::uint8_t>& input, const PublishStamp& stamp,
                     const std::vector<std::uint8_t>& expected, std::uint32_t limit = 0) {
  const PublishRewrite result = rewritePublishV5(input, stamp, limit);
  ASSERT_EQ(result.status, PublishRewriteStatus::Rewritten) << result.detail;
  EXPECT_EQ(result.bytes, expected);
  // Rewriting the result again changes nothing more: with nothing to add it is Unchanged; when
  // every added name is also stripped (as publishStamp makes it), the same bytes come out.
  const PublishRewrite again = rewritePublishV5(result.bytes, stamp, limit);
  if (stamp.add.empty()) {
    EXPECT_EQ(again.status, PublishRewriteStatus::Unchanged) << again.detail;
  } else if (std::all_of(stamp.add.begin(), stamp.add.end(), [&](const auto& added) {
               return std::find(stamp.strip_names.begin(), stamp.strip_names.end(), added.first) !=
                      stamp.strip_names.end();
             })) {
    ASSERT_EQ(again.status, PublishRewriteStatus::Rewritten) << again.detail;
    EXPECT_EQ(again.bytes, expected);
  }
}

void expectMalformed(const std::vector<std::uint8_t>& input, std::string_view what) {
  const PublishRewrite result = rewritePublishV5(input, kIdentity, 0);
  EXPECT_EQ(result.status, PublishRewriteStatus::Malformed) << what;
  EXPECT_TRUE(result.bytes.empty()) << what;
  EXPECT_FALSE(result.detail.empty()) << what;
}

TEST(PublishRewrite, Qos0WithoutPropertiesGetsTheStamp) {
  // Topic "a/b", no properties, payload "hi".
  expectRewritten(frame(0x30, "00 03 61 2f 62 00 68 69"), kIdentity,
                  frame(0x30, std::string("00 03 61 2f 62 0c ") + kStampedProperty + " 68 69"));
}

TEST(PublishRewrite, Qos1And2KeepThePacketIdentifierAndFlags) {
  // QoS 1 with DUP, QoS 2 with RETAIN: flags and packet identifier 0x1234 kept.
  for (std::uint8_t first : {0x3A, 0x35}) {
    expectRewritten(frame(first, "00 01 74 12 34 00 ff 00"), kIdentity,
                    frame(first, std::string("00 01 74 12 34 0c ") + kStampedProperty + " ff 00"));
  }
}

TEST(PublishRewrite, StripOnlyRemovesEveryForgedCopy) {
  const std::string props = std::string(kForgedProperty) + kAppProperty + kForgedProperty;
  const auto input = frame(0x32, "00 01 74 00 07 21 " + props + " 70");
  expectRewritten(input, stamp({"x-cn"}, {}),
                  frame(0x32, std::string("00 01 74 00 07 09 ") + kAppProperty + " 70"));
}

TEST(PublishRewrite, AddOnlyAppendsInOrderAfterTheClientProperties) {
  const auto input = frame(0x30, std::string("00 01 74 09 ") + kAppProperty + " 70");
  expectRewritten(input, stamp({}, {{"x-cn", "dev"}, {"x", ""}}),
                  frame(0x30, std::string("00 01 74 1b ") + kAppProperty + kStampedProperty +
                                  "26 00 01 78 00 00 70"));
}

TEST(PublishRewrite, ForgedPropertyAmongOthersIsReplaced) {
  // Payload format 1, message expiry 60, forged x-cn, content type "t", response topic "r",
  // correlation data 0xab, app=1: only the forgery goes, the stamp is appended at the end.
  const std::string before = "01 01 02 00 00 00 3c";
  const std::string after = std::string("03 00 01 74 08 00 01 72 09 00 01 ab ") + kAppProperty;
  const auto input = frame(0x30, "00 01 74 28 " + before + kForgedProperty + after + " 70 71");
  expectRewritten(input, kIdentity,
                  frame(0x30, "00 01 74 28 " + before + after + kStampedProperty + " 70 71"));
}

TEST(PublishRewrite, TopicAliasAndEmptyTopicWithAlias) {
  expectRewritten(frame(0x30, "00 01 74 03 23 00 05 70"), kIdentity,
                  frame(0x30, std::string("00 01 74 0f 23 00 05 ") + kStampedProperty + " 70"));
  expectRewritten(frame(0x30, "00 00 03 23 00 05 70"), kIdentity,
                  frame(0x30, std::string("00 00 0f 23 00 05 ") + kStampedProperty + " 70"));
}

TEST(PublishRewrite, NothingToDoIsUnchanged) {
  const auto input = frame(0x30, std::string("00 01 74 09 ") + kAppProperty + " 70");
  const PublishRewrite result = rewritePublishV5(input, stamp({"x-cn"}, {}), 0);
  EXPECT_EQ(result.status, PublishRewriteStatus::Unchanged) << result.detail;
  EXPECT_TRUE(result.bytes.empty());
  EXPECT_EQ(rewritePublishV5(input, PublishStamp{}, 0).status, PublishRewriteStatus::Unchanged);
}

TEST(PublishRewrite, RemainingLengthGrowsToTwoBytes) {
  const std::string payload(120, 'p');
  std::vector<std::uint8_t> body = hex("00 01 74 00");
  body.insert(body.end(), payload.begin(), payload.end());
  const auto input = frame(0x30, body);
  ASSERT_EQ(input[1], 124);  // one-byte Remaining Length before
  const PublishRewrite result = rewritePublishV5(input, kIdentity, 0);
  ASSERT_EQ(result.status, PublishRewriteStatus::Rewritten) << result.detail;
  ASSERT_EQ(result.bytes.size(), 3u + 124u + 12u);
  EXPECT_EQ(result.bytes[1], 0x88);  // 136 = 0x88 0x01
  EXPECT_EQ(result.bytes[2], 0x01);
  const FrameResult framed = peekFrame(result.bytes, 1 << 20);
  EXPECT_EQ(framed.status, FrameStatus::Frame);
  EXPECT_EQ(framed.totalSize(), result.bytes.size());
  EXPECT_EQ(std::string(result.bytes.end() - 120, result.bytes.end()), payload);
}

TEST(PublishRewrite, MaximumPacketSize) {
  const auto input = frame(0x30, "00 01 74 00 70");  // 7 bytes; stamped: 19 bytes
  EXPECT_EQ(rewritePublishV5(input, kIdentity, 19).status, PublishRewriteStatus::Rewritten);
  const PublishRewrite over = rewritePublishV5(input, kIdentity, 18);
  EXPECT_EQ(over.status, PublishRewriteStatus::TooLarge);
  EXPECT_TRUE(over.bytes.empty());
  EXPECT_NE(over.detail.find("19"), std::string::npos) << over.detail;
  // An added value that no MQTT string can hold.
  EXPECT_EQ(rewritePublishV5(input, stamp({}, {{"x", std::string(65536, 'v')}}), 0).status,
            PublishRewriteStatus::TooLarge);
}

TEST(PublishRewrite, MalformedFrames) {
  expectMalformed(frame(0x36, "00 01 74 00 01 00 70"), "QoS 3");
  expectMalformed(frame(0x30, "00 05 74"), "topic past the end");
  expectMalformed(frame(0x30, "00"), "truncated topic length");
  expectMalformed(frame(0x30, ""), "empty body");
  expectMalformed(frame(0x32, "00 01 74 00"), "truncated packet identifier");
  expectMalformed(frame(0x32, "00 01 74 00 00 00"), "packet identifier 0");
  expectMalformed(frame(0x30, "00 01 74"), "no property length");
  expectMalformed(frame(0x30, "00 01 74 80 80 80 80 01"), "five-byte property length");
  expectMalformed(frame(0x30, "00 02 c0 80 00"), "overlong UTF-8 topic");
  expectMalformed(frame(0x30, "00 03 ed a0 80 00"), "surrogate in topic");
  expectMalformed(frame(0x30, "00 01 00 00"), "U+0000 in topic");
  expectMalformed(frame(0x30, "00 03 61 2f 23 00"), "wildcard in topic");
  expectMalformed(frame(0x30, "00 03 61 2f 2b 00"), "wildcard in topic");
  expectMalformed(frame(0x30, "00 00 00 70"), "empty topic without alias");
  expectMalformed(frame(0x30, "00 01 74 02 7f 00"), "undefined property id");
  expectMalformed(frame(0x30, "00 01 74 02 0b 01"), "subscription identifier from a client");
  expectMalformed(frame(0x30, "00 01 74 03 11 00 00"), "session expiry is not a PUBLISH property");
  expectMalformed(frame(0x30, "00 01 74 09 26 00 04 78 2d 63 6e 00 03"), "property past its end");
  expectMalformed(frame(0x30, "00 01 74 05 03 00 01 74"), "property length past the end");
  expectMalformed(frame(0x30, "00 01 74 04 01 01 01 00"), "payload format given twice");
  expectMalformed(frame(0x30, "00 01 74 02 01 02"), "payload format 2");
  expectMalformed(frame(0x30, "00 01 74 03 23 00 00"), "topic alias 0");
  expectMalformed(frame(0x30, "00 01 74 05 26 00 01 ff 00 00"), "bad UTF-8 in a user property");
  expectMalformed(frame(0x20, "00 01 74 00"), "not a PUBLISH");
  auto trailing = frame(0x30, "00 01 74 00");
  trailing.push_back(0x00);
  expectMalformed(trailing, "frame longer than its Remaining Length");
}

TEST(PublishRewrite, TruncationAtEveryLengthNeverRewrites) {
  const auto whole =
      frame(0x32, std::string("00 01 74 00 07 13 ") + kForgedProperty + " 01 01 02 00 00 00 3c");
  for (std::size_t n = 0; n < whole.size(); ++n) {
    const PublishRewrite result = rewritePublishV5(std::span(whole).first(n), kIdentity, 0);
    EXPECT_EQ(result.status, PublishRewriteStatus::Malformed) << n;
  }
}

}  // namespace
}  // namespace mqtls::mqtt

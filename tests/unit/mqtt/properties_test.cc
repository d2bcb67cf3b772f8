#include "mqtt/properties.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "connect_samples.h"
#include "mqtt/connect.h"
#include "mqtt/packet.h"

namespace mqtls::mqtt {
namespace {

using namespace std::string_literals;
using Pairs = std::vector<std::pair<std::string, std::string>>;

Properties sample() {
  Properties props;
  props.addUserProperty("a", "1");
  props.items().push_back({property::kSessionExpiryInterval, "\x00\x00\x00\x10"s});
  props.addUserProperty("b", "2");
  props.addUserProperty("a", "3");
  props.addUserProperty("A", "a");
  props.addUserProperty("c", "4");
  return props;
}

TEST(Properties, AddUserPropertyEncodesBothStrings) {
  Properties props;
  props.addUserProperty("k", "vv");
  ASSERT_EQ(props.items().size(), 1u);
  EXPECT_EQ(props.items()[0].id, property::kUserProperty);
  EXPECT_EQ(props.items()[0].raw, "\x00\x01k\x00\x02vv"s);
  EXPECT_EQ(props.encodedBodySize(), 8u);
  EXPECT_EQ(props.userProperties(), (Pairs{{"k", "vv"}}));
}

TEST(Properties, AddUserPropertyIsEncodedInConnect) {
  ConnectPacket p = test::expected5();
  p.will.reset();
  p.username.reset();
  p.password.reset();
  p.properties.items().clear();
  p.properties.addUserProperty("k", "vv");
  const auto encoded = encodeConnect(p);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ(*encoded, test::hex("10 17 00 04 4d 51 54 54 05 02 00 3c"
                                "08 26 00 01 6b 00 02 76 76"
                                "00 02 63 31"));
}

TEST(Properties, RemoveUserPropertiesRemovesExactlyTheNamedOnes) {
  Properties props = sample();
  EXPECT_EQ(props.removeUserProperties({"a", "c"}), 3u);
  ASSERT_EQ(props.items().size(), 3u);
  EXPECT_EQ(props.items()[0].id, property::kSessionExpiryInterval);
  EXPECT_EQ(props.userProperties(), (Pairs{{"b", "2"}, {"A", "a"}}));
}

TEST(Properties, RemoveUserPropertiesMatchesNamesNotValues) {
  Properties props = sample();
  EXPECT_EQ(props.removeUserProperties({"2", "x", ""}), 0u);
  EXPECT_EQ(props, sample());
  EXPECT_EQ(props.removeUserProperties({}), 0u);
}

TEST(Properties, EmptyNameIsANameLikeAnyOther) {
  Properties props;
  props.addUserProperty("", "v");
  props.addUserProperty("n", "");
  EXPECT_EQ(props.removeUserProperties({""}), 1u);
  EXPECT_EQ(props.userProperties(), (Pairs{{"n", ""}}));
}

TEST(Properties, RemoveById) {
  Properties props = sample();
  EXPECT_EQ(props.remove(property::kUserProperty), 5u);
  ASSERT_EQ(props.items().size(), 1u);
  EXPECT_EQ(props.remove(property::kUserProperty), 0u);
  EXPECT_EQ(props.remove(property::kSessionExpiryInterval), 1u);
  EXPECT_TRUE(props.empty());
}

TEST(Properties, FindAndFindString) {
  Properties props = sample();
  props.addString(property::kAuthenticationMethod, "SCRAM");
  ASSERT_NE(props.find(property::kSessionExpiryInterval), nullptr);
  EXPECT_EQ(props.find(property::kSessionExpiryInterval)->raw.size(), 4u);
  EXPECT_EQ(props.find(property::kReasonString), nullptr);
  EXPECT_EQ(props.findString(property::kAuthenticationMethod), "SCRAM");
  EXPECT_EQ(props.findString(property::kReasonString), std::nullopt);
  EXPECT_EQ(props.findString(property::kSessionExpiryInterval), std::nullopt);  // not a string
  EXPECT_EQ(props.find(property::kUserProperty)->raw,
            "\x00\x01"
            "a\x00\x01"
            "1"s);
}

TEST(Properties, OversizedValuesAreNotAdded) {
  Properties props;
  props.addUserProperty(std::string(65'536, 'n'), "v");
  props.addUserProperty("n", std::string(65'536, 'v'));
  props.addString(property::kReasonString, std::string(65'536, 'r'));
  EXPECT_TRUE(props.empty());
  props.addString(property::kReasonString, std::string(65'535, 'r'));
  EXPECT_EQ(props.encodedBodySize(), 1u + 2u + 65'535u);
}

TEST(Properties, EncodedBodySize) {
  EXPECT_EQ(Properties().encodedBodySize(), 0u);
  EXPECT_EQ(sample().encodedBodySize(), 5u * 7u + 5u);
}

}  // namespace
}  // namespace mqtls::mqtt

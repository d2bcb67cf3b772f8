// Identity policy: which certificate field becomes the username, how the client id and password
// are treated, and that identity user properties cannot be forged.
#include <gtest/gtest.h>

#include "identity/policy.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mqtls::identity {
namespace {

using config::ClientIdPolicy;
using config::IdentitySource;

tls::PeerIdentity device() {
  tls::PeerIdentity peer;
  peer.common_name = "device-001";
  peer.subject_dn = "CN=device-001,O=mqtls test";
  peer.san_uri = {"urn:example", "spiffe://mqtls.test/device/device-001"};
  peer.spiffe_id = "spiffe://mqtls.test/device/device-001";
  peer.san_dns = {"a.example", "b.example"};
  peer.fingerprint_sha256 = std::string(64, 'a');
  peer.serial_hex = "0A1B";
  return peer;
}

mqtt::ConnectPacket connect(mqtt::ProtocolLevel level = mqtt::ProtocolLevel::V311) {
  mqtt::ConnectPacket packet;
  packet.level = level;
  packet.client_id = "sensor";
  packet.username = "claimed-admin";
  packet.password = "secret";
  return packet;
}

TEST(IdentityPolicy, ReplaceInjectsCommonNameWhateverTheClientClaimed) {
  config::IdentityPolicy policy;
  auto peer = device();
  auto packet = connect();
  auto decision = applyIdentityPolicy(policy, &peer, packet);
  ASSERT_TRUE(decision.accepted);
  EXPECT_EQ(decision.identity, "device-001");
  EXPECT_EQ(packet.username, "device-001");
  EXPECT_EQ(packet.password, "secret");
  EXPECT_EQ(packet.client_id, "sensor");
}

TEST(IdentityPolicy, IfEmptyKeepsAClientUsername) {
  config::IdentityPolicy policy;
  policy.username = config::UsernamePolicy::IfEmpty;
  auto peer = device();
  auto packet = connect();
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_EQ(packet.username, "claimed-admin");
  packet.username.reset();
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_EQ(packet.username, "device-001");
}

TEST(IdentityPolicy, FirstPresentSourceWins) {
  config::IdentityPolicy policy;
  policy.username_from = {IdentitySource::SanEmail, IdentitySource::SpiffeId, IdentitySource::Cn};
  auto peer = device();
  auto packet = connect();
  auto decision = applyIdentityPolicy(policy, &peer, packet);
  EXPECT_EQ(decision.identity, "spiffe://mqtls.test/device/device-001");
  policy.username_from = {IdentitySource::SanUri};
  EXPECT_EQ(applyIdentityPolicy(policy, &peer, packet).identity, "urn:example");
  policy.username_from = {IdentitySource::Serial};
  EXPECT_EQ(applyIdentityPolicy(policy, &peer, packet).identity, "0A1B");
  policy.username_from = {IdentitySource::Dn};
  EXPECT_EQ(applyIdentityPolicy(policy, &peer, packet).identity, "CN=device-001,O=mqtls test");
}

TEST(IdentityPolicy, NoSourcePresentIsBadCredentials) {
  config::IdentityPolicy policy;
  policy.username_from = {IdentitySource::SanEmail};
  auto peer = device();
  auto packet = connect();
  auto decision = applyIdentityPolicy(policy, &peer, packet);
  EXPECT_FALSE(decision.accepted);
  EXPECT_EQ(decision.refusal, mqtt::Refusal::BadCredentials);
}

TEST(IdentityPolicy, PasswordStrip) {
  config::IdentityPolicy policy;
  policy.password = config::PasswordPolicy::Strip;
  auto peer = device();
  auto packet = connect();
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_FALSE(packet.password.has_value());
}

TEST(IdentityPolicy, ClientIdPolicies) {
  config::IdentityPolicy policy;
  auto peer = device();

  policy.client_id = ClientIdPolicy::RequireMatch;
  auto packet = connect();
  auto refused = applyIdentityPolicy(policy, &peer, packet);
  EXPECT_FALSE(refused.accepted);
  EXPECT_EQ(refused.refusal, mqtt::Refusal::IdentifierRejected);
  packet = connect();
  packet.client_id = "device-001";
  EXPECT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);

  policy.client_id = ClientIdPolicy::Replace;
  packet = connect();
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_EQ(packet.client_id, "device-001");

  policy.client_id = ClientIdPolicy::Prefix;
  policy.client_id_separator = "/";
  packet = connect();
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_EQ(packet.client_id, "device-001/sensor");
}

TEST(IdentityPolicy, PrefixRefusesIdentityHoldingTheSeparator) {
  config::IdentityPolicy policy;
  policy.client_id = ClientIdPolicy::Prefix;
  policy.username_from = {IdentitySource::SpiffeId};
  auto peer = device();
  auto packet = connect();
  auto decision = applyIdentityPolicy(policy, &peer, packet);  // "spiffe://..." holds ':'
  EXPECT_FALSE(decision.accepted);
  EXPECT_EQ(decision.refusal, mqtt::Refusal::IdentifierRejected);
  policy.client_id_separator = "|";
  packet = connect();
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_EQ(packet.client_id, "spiffe://mqtls.test/device/device-001|sensor");
}

TEST(IdentityPolicy, FilledEmptyClientIdIsAssignedInMqtt5Only) {
  config::IdentityPolicy policy;
  policy.client_id = ClientIdPolicy::Replace;
  auto peer = device();
  auto v5 = connect(mqtt::ProtocolLevel::V5);
  v5.client_id.clear();
  auto decision = applyIdentityPolicy(policy, &peer, v5);
  ASSERT_TRUE(decision.assigned_client_id.has_value());
  EXPECT_EQ(*decision.assigned_client_id, "device-001");
  auto v311 = connect();
  v311.client_id.clear();
  EXPECT_FALSE(applyIdentityPolicy(policy, &peer, v311).assigned_client_id.has_value());
}

TEST(IdentityPolicy, ForgedUserPropertiesAreReplaced) {
  config::IdentityPolicy policy;
  policy.user_properties = {{IdentitySource::Cn, "x-cert-cn"},
                            {IdentitySource::SanDns, "x-cert-dns"}};
  auto peer = device();
  auto packet = connect(mqtt::ProtocolLevel::V5);
  packet.properties.addUserProperty("x-cert-cn", "admin");
  packet.properties.addUserProperty("app", "kept");
  packet.properties.addUserProperty("x-cert-cn", "root");
  packet.will = mqtt::Will{};
  packet.will->topic = "t";
  packet.will->properties.addUserProperty("x-cert-cn", "admin");
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  auto props = packet.properties.userProperties();
  ASSERT_EQ(props.size(), 4u);
  EXPECT_EQ(props[0], (std::pair<std::string, std::string>{"app", "kept"}));
  EXPECT_EQ(props[1], (std::pair<std::string, std::string>{"x-cert-cn", "device-001"}));
  EXPECT_EQ(props[2], (std::pair<std::string, std::string>{"x-cert-dns", "a.example"}));
  EXPECT_EQ(props[3], (std::pair<std::string, std::string>{"x-cert-dns", "b.example"}));
  EXPECT_TRUE(packet.will->properties.userProperties().empty());
}

TEST(IdentityPolicy, AnonymousPassthroughStillStripsForgeries) {
  config::IdentityPolicy policy;
  policy.user_properties = {{IdentitySource::Cn, "x-cert-cn"}};
  auto packet = connect(mqtt::ProtocolLevel::V5);
  packet.properties.addUserProperty("x-cert-cn", "admin");
  auto decision = applyIdentityPolicy(policy, nullptr, packet);
  ASSERT_TRUE(decision.accepted);
  EXPECT_EQ(packet.username, "claimed-admin");
  EXPECT_TRUE(packet.properties.userProperties().empty());
}

TEST(IdentityPolicy, AnonymousRefuse) {
  config::IdentityPolicy policy;
  policy.anonymous = config::AnonymousPolicy::Refuse;
  auto packet = connect();
  auto decision = applyIdentityPolicy(policy, nullptr, packet);
  EXPECT_FALSE(decision.accepted);
  EXPECT_EQ(decision.refusal, mqtt::Refusal::BadCredentials);
}

TEST(IdentityPolicy, UsernameRequireMatchRefusesAnotherName) {
  config::IdentityPolicy policy;
  policy.username = config::UsernamePolicy::RequireMatch;
  auto peer = device();
  auto packet = connect();  // user name "claimed-admin", password "secret"
  auto decision = applyIdentityPolicy(policy, &peer, packet);
  EXPECT_FALSE(decision.accepted);
  EXPECT_EQ(decision.refusal, mqtt::Refusal::BadCredentials);
  EXPECT_NE(decision.reason.find("'claimed-admin'"), std::string::npos) << decision.reason;
  EXPECT_NE(decision.reason.find("'device-001'"), std::string::npos) << decision.reason;
  EXPECT_EQ(decision.reason.find("secret"), std::string::npos) << decision.reason;
  // A long claimed name is cut in the reason.
  packet = connect();
  packet.username = std::string(1000, 'u');
  decision = applyIdentityPolicy(policy, &peer, packet);
  EXPECT_FALSE(decision.accepted);
  EXPECT_LT(decision.reason.size(), 200u) << decision.reason;
}

TEST(IdentityPolicy, UsernameRequireMatchAcceptsNoneOrTheIdentity) {
  config::IdentityPolicy policy;
  policy.username = config::UsernamePolicy::RequireMatch;
  auto peer = device();
  for (const std::optional<std::string>& sent :
       {std::optional<std::string>(), std::optional<std::string>(""),
        std::optional<std::string>("device-001")}) {
    auto packet = connect();
    packet.username = sent;
    auto decision = applyIdentityPolicy(policy, &peer, packet);
    EXPECT_TRUE(decision.accepted) << decision.reason;
    EXPECT_EQ(packet.username, "device-001");
  }
}

TEST(IdentityPolicy, Mqtt31ClientIdAtMost23Bytes) {
  config::IdentityPolicy policy;
  auto peer = device();
  // replace: a 37-byte SPIFFE ID cannot be a 3.1 client id, but is fine for 3.1.1 and 5.
  policy.client_id = ClientIdPolicy::Replace;
  policy.username_from = {IdentitySource::SpiffeId};
  auto packet = connect(mqtt::ProtocolLevel::V31);
  auto decision = applyIdentityPolicy(policy, &peer, packet);
  EXPECT_FALSE(decision.accepted);
  EXPECT_EQ(decision.refusal, mqtt::Refusal::IdentifierRejected);
  EXPECT_NE(decision.reason.find("MQTT 3.1"), std::string::npos) << decision.reason;
  EXPECT_NE(decision.reason.find("37"), std::string::npos) << decision.reason;
  for (auto level : {mqtt::ProtocolLevel::V311, mqtt::ProtocolLevel::V5}) {
    packet = connect(level);
    EXPECT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  }
  // prefix: "device-001:" + 12 bytes = 23 passes, one more byte is refused.
  policy.client_id = ClientIdPolicy::Prefix;
  policy.username_from = {IdentitySource::Cn};
  packet = connect(mqtt::ProtocolLevel::V31);
  packet.client_id = std::string(12, 'c');
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_EQ(packet.client_id.size(), 23u);
  packet = connect(mqtt::ProtocolLevel::V31);
  packet.client_id = std::string(13, 'c');
  decision = applyIdentityPolicy(policy, &peer, packet);
  EXPECT_FALSE(decision.accepted);
  EXPECT_EQ(decision.refusal, mqtt::Refusal::IdentifierRejected);
  // keep: the client's own choice is not the proxy's to police.
  policy.client_id = ClientIdPolicy::Keep;
  packet = connect(mqtt::ProtocolLevel::V31);
  packet.client_id = std::string(30, 'c');
  EXPECT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
}

TEST(IdentityPolicy, PublishStampStripsEveryIdentityNameOnceAndAddsCertificateValues) {
  config::IdentityPolicy policy;
  policy.user_properties = {{IdentitySource::Cn, "x-cert-cn"}, {IdentitySource::Serial, "x-sn"}};
  policy.publish_properties = {{IdentitySource::Cn, "x-cert-cn"},
                               {IdentitySource::SanDns, "x-dns"}};
  auto peer = device();
  const mqtt::PublishStamp stamp = publishStamp(policy, &peer);
  EXPECT_EQ(stamp.strip_names, (std::vector<std::string>{"x-cert-cn", "x-sn", "x-dns"}));
  EXPECT_EQ(stamp.add,
            (std::vector<std::pair<std::string, std::string>>{
                {"x-cert-cn", "device-001"}, {"x-dns", "a.example"}, {"x-dns", "b.example"}}));
  const mqtt::PublishStamp anonymous = publishStamp(policy, nullptr);
  EXPECT_EQ(anonymous.strip_names, stamp.strip_names);
  EXPECT_TRUE(anonymous.add.empty());
  EXPECT_TRUE(publishStamp(config::IdentityPolicy{}, &peer).empty());
}

TEST(IdentityPolicy, WillIsStrippedAndStampedLikeAPublish) {
  config::IdentityPolicy policy;
  policy.publish_properties = {{IdentitySource::Cn, "x-pub-cn"}};
  auto peer = device();
  auto packet = connect(mqtt::ProtocolLevel::V5);
  packet.properties.addUserProperty("x-pub-cn", "forged");
  packet.will = mqtt::Will{};
  packet.will->topic = "t";
  packet.will->properties.addUserProperty("x-pub-cn", "forged");
  packet.will->properties.addUserProperty("app", "kept");
  ASSERT_TRUE(applyIdentityPolicy(policy, &peer, packet).accepted);
  EXPECT_TRUE(packet.properties.userProperties().empty());
  EXPECT_EQ(packet.will->properties.userProperties(),
            (std::vector<std::pair<std::string, std::string>>{{"app", "kept"},
                                                              {"x-pub-cn", "device-001"}}));
}

}  // namespace
}  // namespace mqtls::identity

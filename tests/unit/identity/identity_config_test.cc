// The identity section keys this part adds: username: require_match and publish_properties,
// read through the real loader with errors at file:line:col.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "../config/config_test_support.h"

namespace mqtls::config::testing {
namespace {

using Properties = std::vector<std::pair<IdentitySource, std::string>>;

TEST_F(ConfigTest, UsernameRequireMatch) {
  const Config config = loadOk(std::string(kMinimal) + "identity:\n  username: require_match\n");
  EXPECT_EQ(config.identity.username, UsernamePolicy::RequireMatch);
  expectOneError(load(std::string(kMinimal) + "identity:\n  username: require_matches\n"), "8:13",
                 "identity.username", "require_match");
}

TEST_F(ConfigTest, PublishProperties) {
  const Config config = loadOk(std::string(kMinimal) + R"(identity:
  user_properties:
    cn: x-cert-cn
  publish_properties:
    fingerprint_sha256: x-cert-fingerprint
    cn: x-cert-cn
)");
  EXPECT_EQ(config.identity.publish_properties,
            (Properties{{IdentitySource::FingerprintSha256, "x-cert-fingerprint"},
                        {IdentitySource::Cn, "x-cert-cn"}}));
  EXPECT_EQ(config.identity.user_properties, (Properties{{IdentitySource::Cn, "x-cert-cn"}}));
  EXPECT_TRUE(loadOk(kMinimal).identity.publish_properties.empty());
}

TEST_F(ConfigTest, PublishPropertiesErrorsHavePositions) {
  const LoadResult result = load(std::string(kMinimal) + R"(identity:
  publish_properties:
    cn: x-id
    sn: x-sn
    dn: x-id
    serial: ""
)");
  ASSERT_EQ(result.errors.size(), 3u) << joinErrors(result);
  expectError(result.errors[0], "10:5", "identity.publish_properties.sn",
              "unknown certificate field 'sn' (did you mean 'cn'?)");
  expectError(result.errors[1], "11:9", "identity.publish_properties.dn",
              "property name 'x-id' is already used for 'cn'");
  expectError(result.errors[2], "12:13", "identity.publish_properties.serial",
              "must be 1 to 255 bytes long");
  expectOneError(load(std::string(kMinimal) + "identity:\n  publish_properties: [cn]\n"), "8:23",
                 "identity.publish_properties", "expected a map");
}

}  // namespace
}  // namespace mqtls::config::testing

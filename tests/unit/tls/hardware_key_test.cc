// PKCS#11 URIs (RFC 7512) taken apart for the engine: PIN and module attributes are kept out of
// what the engine is given, the token-only URI keeps just the token attributes, %-escapes are
// decoded, and the PIN never appears in a message. Loading from a real token is covered by
// tests/integration/test_hardware_key.py (SoftHSM2).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tls/hardware_key.h"

namespace mqtls::tls {
namespace {

TEST(HardwareKey, RecognizesTheScheme) {
  EXPECT_TRUE(isPkcs11Uri("pkcs11:token=a"));
  EXPECT_TRUE(isPkcs11Uri("PKCS11:token=a"));
  EXPECT_FALSE(isPkcs11Uri("/etc/mqtls/server.key"));
  EXPECT_FALSE(isPkcs11Uri("pkcs11"));
  EXPECT_FALSE(isPkcs11Uri("certs/pkcs11:x"));
}

TEST(HardwareKey, SplitsPinAndModuleFromWhatTheEngineGets) {
  auto uri = parsePkcs11Uri(
      "pkcs11:token=My%20Token;object=server;type=private?module-path=/usr/lib/m%2B.so&"
      "pin-value=12%3B34");
  ASSERT_TRUE(uri.ok()) << uri.error().message;
  EXPECT_EQ(uri->engine_uri, "pkcs11:token=My%20Token;object=server;type=private");
  EXPECT_EQ(uri->token_uri, "pkcs11:token=My%20Token");
  EXPECT_EQ(uri->token_label, "My Token");
  EXPECT_EQ(uri->module_path, "/usr/lib/m+.so");
  EXPECT_EQ(uri->pin, "12;34");
  EXPECT_TRUE(uri->pin_file.empty());
}

TEST(HardwareKey, PinSourceIsAFile) {
  auto uri = parsePkcs11Uri("pkcs11:token=t;object=k?pin-source=file:/run/pin&x-other=1");
  ASSERT_TRUE(uri.ok()) << uri.error().message;
  EXPECT_EQ(uri->pin_file, "/run/pin");
  EXPECT_EQ(uri->engine_uri, "pkcs11:token=t;object=k?x-other=1");
  EXPECT_EQ(parsePkcs11Uri("pkcs11:token=t?pin-source=/run/pin")->pin_file, "/run/pin");
  auto command = parsePkcs11Uri("pkcs11:token=t?pin-source=|/bin/echo");
  ASSERT_FALSE(command.ok());
  EXPECT_NE(command.error().message.find("pin-source=file:"), std::string::npos);
}

TEST(HardwareKey, RefusesMalformedAttributesWithoutShowingThePin) {
  for (const char* text : {"pkcs11:token", "pkcs11:token=a?pin-value=12%3", "pkcs11:object=%zz"}) {
    auto uri = parsePkcs11Uri(text);
    ASSERT_FALSE(uri.ok()) << text;
    EXPECT_NE(uri.error().message.find("RFC 7512"), std::string::npos) << uri.error().message;
    EXPECT_EQ(uri.error().message.find("12%3"), std::string::npos) << uri.error().message;
  }
  auto both = parsePkcs11Uri("pkcs11:token=a?pin-value=1234&pin-source=file:/p");
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().message.find("1234"), std::string::npos);
}

TEST(HardwareKey, NoTokenAttributeMeansNoTokenUri) {
  auto uri = parsePkcs11Uri("pkcs11:object=server;type=private");
  ASSERT_TRUE(uri.ok());
  EXPECT_TRUE(uri->token_uri.empty());
}

TEST(HardwareKey, RedactsEveryPinValue) {
  EXPECT_EQ(redactPkcs11Uri("pkcs11:token=a;pin-value=1234;object=k?pin-value=5678&x=1"),
            "pkcs11:token=a;pin-value=***;object=k?pin-value=***&x=1");
  EXPECT_EQ(redactPkcs11Uri("pkcs11:token=a?pin-value="), "pkcs11:token=a?pin-value=***");
  EXPECT_EQ(redactPkcs11Uri("/etc/mqtls/server.key"), "/etc/mqtls/server.key");
}

TEST(HardwareKey, UnreadablePinFileIsNamedBeforeAnyTokenIsTouched) {
  auto key = loadHardwareKey("pkcs11:token=t;object=k?pin-source=file:/nonexistent/mqtls-pin");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.error().message.find("cannot read the PIN file '/nonexistent/mqtls-pin'"),
            std::string::npos)
      << key.error().message;
}

TEST(HardwareKey, EmptyPinFileIsRefused) {
  const auto path =
      std::filesystem::temp_directory_path() / ("mqtls-empty-pin-" + std::to_string(::getpid()));
  std::ofstream(path) << "\nsecond line\n";
  auto key = loadHardwareKey("pkcs11:token=t;object=k?pin-source=file:" + path.string());
  std::filesystem::remove(path);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.error().message.find("has no PIN on its first line"), std::string::npos)
      << key.error().message;
}

}  // namespace
}  // namespace mqtls::tls

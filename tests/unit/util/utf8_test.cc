// The one UTF-8 validator: RFC 3629 well-formedness and the MQTT / certificate character rules.
#include "util/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace mqtls::utf8 {
namespace {

TEST(Utf8, WellFormedTextPassesBothRules) {
  for (const std::string text : {"", "device-001", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                 "\xED\x9F\xBF", "\xEE\x80\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(isValid(text, kMqtt)) << text;
    EXPECT_TRUE(isValid(text, kCertificate)) << text;
  }
}

TEST(Utf8, IllFormedTextFailsBothRules) {
  for (const std::string text : {
           "\xC0\x80",                                       // overlong U+0000
           "\xC1\xBF",                                       // overlong U+007F
           "\xE0\x9F\xBF",                                   // overlong U+07FF
           "\xF0\x8F\xBF\xBF",                               // overlong U+FFFF
           "\xED\xA0\x80",                                   // surrogate U+D800
           "\xED\xBF\xBF",                                   // surrogate U+DFFF
           "\xF4\x90\x80\x80",                               // U+110000
           "\xF8\x88\x80\x80\x80", "\xFF", "\x80", "a\xBF",  // bad leads
           "\xE2\x82",                                       // truncated
           "\xC3",                                           // truncated at the end
           "\xE2\x28\xA1",                                   // bad continuation
       }) {
    EXPECT_FALSE(isValid(text, kMqtt)) << testing::PrintToString(text);
    EXPECT_FALSE(isValid(text, kCertificate)) << testing::PrintToString(text);
  }
}

TEST(Utf8, NulIsRefusedByBothRules) {
  const std::string nul("a\0b", 3);
  EXPECT_FALSE(isValid(nul, kMqtt));
  EXPECT_FALSE(isValid(nul, kCertificate));
  EXPECT_TRUE(isValid(nul, Rules{.allow_nul = true, .allow_controls = true}));
}

TEST(Utf8, ControlCharactersOnlyRefusedForCertificates) {
  for (const std::string text :
       {"a\nb", "\x01", "\x1F", "\x7F", "\xC2\x80", "\xC2\x85", "\xC2\x9F", "tab\there"}) {
    EXPECT_TRUE(isValid(text, kMqtt)) << testing::PrintToString(text);
    EXPECT_FALSE(isValid(text, kCertificate)) << testing::PrintToString(text);
  }
  // The characters around the control ranges are not controls.
  for (const std::string text : {" ", "~", "\xC2\xA0", "\xC2\xA9"}) {
    EXPECT_TRUE(isValid(text, kCertificate)) << testing::PrintToString(text);
  }
}

}  // namespace
}  // namespace mqtls::utf8

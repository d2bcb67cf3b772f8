// Log escaping: whatever a client puts in its client id cannot break a log line.
#include <gtest/gtest.h>

#include "ops/logging.h"

namespace mqtls::ops {
namespace {

TEST(JsonEscape, QuotesBackslashesAndControls) {
  EXPECT_EQ(jsonEscape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(jsonEscape("line\nbreak\r\t"), "line\\nbreak\\r\\t");
  EXPECT_EQ(jsonEscape(std::string("nul\0x", 5)), "nul\\u0000x");
  EXPECT_EQ(jsonEscape("\x7f"), "\\u007f");
}

TEST(JsonEscape, UnicodeLineSeparators) {
  EXPECT_EQ(jsonEscape("a\xE2\x80\xA8"
                       "b\xE2\x80\xA9"
                       "c"),
            "a\\u2028b\\u2029c");
  EXPECT_EQ(jsonEscape("caf\xC3\xA9"), "caf\xC3\xA9");  // other UTF-8 passes unchanged
  EXPECT_EQ(jsonEscape("\xE2\x80"), "\xE2\x80");        // truncated sequence: no overread
}

}  // namespace
}  // namespace mqtls::ops

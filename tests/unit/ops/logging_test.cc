// Logging: whatever a client puts in its client id, and whatever any message holds, cannot break
// a log line; in JSON mode every line is exactly one valid JSON object.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "json_checker.h"
#include "ops/logging.h"

namespace mqtls::ops {
namespace {

using mqtls::testing::JsonChecker;

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
  EXPECT_EQ(jsonEscape("\xF0\x9F\x94\x92"), "\xF0\x9F\x94\x92");
}

TEST(JsonEscape, EveryByteOutsideWellFormedUtf8IsReplaced) {
  EXPECT_EQ(jsonEscape("\xE2\x80"), "\\ufffd\\ufffd");  // truncated sequence: no overread
  EXPECT_EQ(jsonEscape("a\xFF"
                       "b"),
            "a\\ufffdb");
  EXPECT_EQ(jsonEscape("\xC0\xAF"), "\\ufffd\\ufffd");                        // overlong '/'
  EXPECT_EQ(jsonEscape("\xED\xA0\x80"), "\\ufffd\\ufffd\\ufffd");             // surrogate
  EXPECT_EQ(jsonEscape("\xF4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // > U+10FFFF
}

// A logger writing JSON lines into a string, as log.format json does to stderr.
struct JsonLog {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
  JsonLog() {
    logger = std::make_shared<spdlog::logger>(
        "json-test", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
    logger->set_formatter(makeJsonFormatter());
  }
  // Each line, parsed; fails the test for a line that is not exactly one JSON object.
  std::vector<JsonChecker::Members> lines() {
    std::vector<JsonChecker::Members> parsed;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) {
      std::string why;
      auto members = JsonChecker::object(line, &why);
      EXPECT_TRUE(members.has_value()) << why << ": " << line;
      parsed.push_back(members.value_or(JsonChecker::Members{}));
    }
    return parsed;
  }
};

TEST(JsonLogLines, EveryMessageIsOneValidObject) {
  const char controls[] = "controls \x01\x02\x1f\x7f and nul \0!";
  const std::vector<std::string> messages = {
      "plain",
      "",
      "{",
      "}",
      "{\"level\":\"forged\",\"event\":\"connection_closed\"}",
      "{\"msg\":1}",
      "quote \" backslash \\ end\\",
      std::string(controls, sizeof controls - 1),
      "new\nline and \r return",
      "bad utf-8 \xFF\xFE \xC0\xAF \xED\xA0\x80 \xE2\x82",
      "separators \xE2\x80\xA8 \xE2\x80\xA9",
      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x92",
  };
  JsonLog log;
  for (const auto& message : messages) {
    log.logger->info("{}", message);
  }
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), messages.size()) << log.out.str();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    // time, level and msg, nothing merged in from the message.
    EXPECT_EQ(lines[i].size(), 3u) << log.out.str();
    EXPECT_EQ(lines[i].count("time"), 1u);
    EXPECT_EQ(lines[i].count("level") ? lines[i].at("level") : "", "info");
    EXPECT_EQ(lines[i].count("msg"), 1u);
  }
  EXPECT_EQ(lines[4].at("msg"), messages[4]);
  EXPECT_EQ(lines[6].at("msg"), messages[6]);
  EXPECT_EQ(lines[7].at("msg"), messages[7]);
  EXPECT_EQ(lines[8].at("msg"), messages[8]);
  EXPECT_EQ(lines[9].at("msg"),
            "bad utf-8 \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD "
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(lines[11].at("msg"), messages[11]);
}

TEST(JsonLogLines, AccessRecordFieldsAreMergedAndEscaped) {
  AccessRecord record;
  record.id = 7;
  record.listener = "mqtts";
  record.peer = "127.0.0.1:5000";
  record.identity = "device-\"1\"\\\n";
  record.client_id = "{\"level\":\"forged\"} \xFF";
  record.duration_ms = std::nan("");
  record.close_reason = "client_closed";
  JsonLog log;
  logAccess(*log.logger, record, true);
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u) << log.out.str();
  const auto& line = lines[0];
  EXPECT_EQ(line.at("level"), "info");
  EXPECT_EQ(line.at("event"), "connection_closed");
  EXPECT_EQ(line.at("identity"), record.identity);
  EXPECT_EQ(line.at("client_id"), "{\"level\":\"forged\"} \xEF\xBF\xBD");
  EXPECT_EQ(line.count("msg"), 0u);
  EXPECT_EQ(line.at("duration_ms"), "<value>");
}

TEST(AccessLines, CarrySniAndReloadGeneration) {
  AccessRecord record;
  record.id = 9;
  record.listener = "mqtts";
  record.generation = 3;
  record.sni = "broker.example";
  record.close_reason = "admin";
  JsonLog log;
  logAccess(*log.logger, record, true);
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u) << log.out.str();
  EXPECT_EQ(lines[0].at("sni"), "broker.example");
  EXPECT_EQ(lines[0].at("generation"), "<value>");  // a number, not a string
  EXPECT_NE(log.out.str().find("\"generation\":3,"), std::string::npos) << log.out.str();

  std::ostringstream text;
  spdlog::logger plain("text-test", std::make_shared<spdlog::sinks::ostream_sink_st>(text));
  plain.set_pattern("%v");
  logAccess(plain, record, false);
  EXPECT_NE(text.str().find(" generation=3 "), std::string::npos) << text.str();
  EXPECT_NE(text.str().find(" sni=broker.example "), std::string::npos) << text.str();
  record.sni.clear();
  text.str("");
  logAccess(plain, record, false);
  EXPECT_NE(text.str().find(" sni=- "), std::string::npos) << text.str();
}

}  // namespace
}  // namespace mqtls::ops

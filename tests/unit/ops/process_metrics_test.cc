#include "ops/process_metrics.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <string>

namespace mqtls::ops {
namespace {

// Fields 3.. of a real /proc/PID/stat line: utime 250, stime 50, starttime 2313320,
// vsize 3133440, rss 382 pages.
constexpr const char* kTail =
    " R 491 491 24711 0 -1 4194304 98 0 0 0 250 50 0 0 20 0 1 0 2313320 3133440 382 "
    "18446744073709551615 94809694932992 94809694952873 140727780485952 0 0 0 0 0 0 0 0 0 17 0";

TEST(ProcessStatTest, ReadsTheFieldsAfterTheCommandName) {
  // A command name may hold spaces and parentheses: fields count from the last ')'.
  auto facts = parseProcessStat(std::string("494 (my (odd) name)") + kTail, 1.7e9, 100, 4096);
  ASSERT_TRUE(facts.has_value());
  EXPECT_DOUBLE_EQ(facts->cpu_seconds, 3.0);
  EXPECT_DOUBLE_EQ(facts->start_time_seconds, 1.7e9 + 23133.2);
  EXPECT_DOUBLE_EQ(facts->virtual_bytes, 3133440);
  EXPECT_DOUBLE_EQ(facts->resident_bytes, 382.0 * 4096);
}

TEST(ProcessStatTest, RefusesWhatIsNotAStatLine) {
  EXPECT_FALSE(parseProcessStat("", 0, 100, 4096));
  EXPECT_FALSE(parseProcessStat("494 (cat) R 491", 0, 100, 4096));
  EXPECT_FALSE(parseProcessStat(std::string("494 cat") + kTail, 0, 100, 4096));
  std::string bad = std::string("494 (cat)") + kTail;
  bad.replace(bad.find(" 250 "), 5, " 2x0 ");
  EXPECT_FALSE(parseProcessStat(bad, 0, 100, 4096));
  EXPECT_FALSE(parseProcessStat(std::string("494 (cat)") + kTail, 0, 0, 4096));
}

TEST(ProcessMetricsTest, ThisProcessHasEveryFamilyWithLikelyValues) {
  std::map<std::string, double> values;
  for (const auto& family : collectProcessMetrics()) {
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    values[family.name] = family.type == prometheus::MetricType::Counter
                              ? family.metric[0].counter.value
                              : family.metric[0].gauge.value;
  }
  ASSERT_EQ(values.size(), 6u);
  EXPECT_GT(values["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GE(values["process_virtual_memory_bytes"], values["process_resident_memory_bytes"]);
  EXPECT_GE(values["process_cpu_seconds_total"], 0);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(values["process_start_time_seconds"], now + 1);
  EXPECT_GT(values["process_start_time_seconds"], now - 3600);
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(values["process_max_fds"], static_cast<double>(limit.rlim_cur));
  // One more descriptor open is one more counted.
  const double open = values["process_open_fds"];
  EXPECT_GE(open, 3);
  int extra = dup(0);
  ASSERT_GE(extra, 0);
  double now_open = -1;
  for (const auto& family : collectProcessMetrics()) {
    if (family.name == "process_open_fds") {
      now_open = family.metric[0].gauge.value;
    }
  }
  close(extra);
  EXPECT_EQ(now_open, open + 1);
}

}  // namespace
}  // namespace mqtls::ops

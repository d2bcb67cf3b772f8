#include "ops/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mqtls::ops {
namespace {

std::string readFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "btime N" of /proc/stat: when the machine booted, in seconds since the epoch; 0 if absent.
double readBootTime() {
  std::istringstream lines(readFile("/proc/stat"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("btime ", 0) == 0) {
      return std::strtod(line.c_str() + 6, nullptr);
    }
  }
  return 0;
}

// Entries of /proc/self/fd, less the one opendir holds while counting; -1 if unreadable.
double openDescriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    return -1;
  }
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    count += entry->d_name[0] != '.' ? 1 : 0;
  }
  closedir(dir);
  return count - 1;
}

prometheus::MetricFamily family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return prometheus::MetricFamily{name, help, type, {metric}};
}

}  // namespace

std::optional<ProcessFacts> parseProcessStat(std::string_view stat, double boot_time, long ticks,
                                             long page_size) {
  // Fields after "pid (comm) ": state is field 3; utime 14, stime 15, starttime 22, vsize 23,
  // rss 24 (1-based, as proc(5) numbers them).
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos || ticks <= 0 || page_size <= 0) {
    return std::nullopt;
  }
  std::istringstream fields{std::string(stat.substr(close + 1))};
  std::vector<std::string> after;
  for (std::string field; fields >> field;) {
    after.push_back(field);
  }
  constexpr std::size_t kFirst = 3;  // after[0] is field 3
  if (after.size() < 24 - kFirst + 1) {
    return std::nullopt;
  }
  auto number = [&](std::size_t field, double& out) {
    const std::string& text = after[field - kFirst];
    unsigned long long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    out = static_cast<double>(value);
    return error == std::errc() && end == text.data() + text.size();
  };
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (!number(14, utime) || !number(15, stime) || !number(22, start) || !number(23, vsize) ||
      !number(24, rss)) {
    return std::nullopt;
  }
  ProcessFacts facts;
  facts.cpu_seconds = (utime + stime) / static_cast<double>(ticks);
  facts.start_time_seconds = boot_time + start / static_cast<double>(ticks);
  facts.virtual_bytes = vsize;
  facts.resident_bytes = rss * static_cast<double>(page_size);
  return facts;
}

std::vector<prometheus::MetricFamily> collectProcessMetrics() {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  static const double boot_time = readBootTime();  // fixed; /proc/stat is long on many cores
  auto facts = parseProcessStat(readFile("/proc/self/stat"), boot_time, sysconf(_SC_CLK_TCK),
                                sysconf(_SC_PAGESIZE));
  if (facts) {
    families.push_back(family("process_cpu_seconds_total",
                              "Total user and system CPU time spent in seconds.",
                              MetricType::Counter, facts->cpu_seconds));
    families.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.",
                              MetricType::Gauge, facts->resident_bytes));
    families.push_back(family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                              MetricType::Gauge, facts->virtual_bytes));
    families.push_back(family("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              MetricType::Gauge, facts->start_time_seconds));
  }
  if (double open = openDescriptors(); open >= 0) {
    families.push_back(
        family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, open));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    families.push_back(family("process_max_fds", "Maximum number of open file descriptors.",
                              MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

}  // namespace mqtls::ops

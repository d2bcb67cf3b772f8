#include "measure.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mqtls::bench {

double processCpuSeconds(int pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(file, line)) {
    return -1;
  }
  // Fields after the command name (which may contain spaces) start at field 3 (state);
  // utime and stime are fields 14 and 15.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int index = 3; index <= 15 && rest >> field; ++index) {
    if (index == 14) {
      utime = std::stoull(field);
    } else if (index == 15) {
      stime = std::stoull(field);
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long processRssKib(int pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(file, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

double selfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void CpuMeter::start() {
  start_.clear();
  for (int pid : pids_) {
    start_.push_back(processCpuSeconds(pid));
  }
  self_start_ = selfCpuSeconds();
}

void CpuMeter::stop(RunResult& result) const {
  result.generator_cpu = selfCpuSeconds() - self_start_;
  result.server_cpu = result.total_cpu = 0;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    double used = std::max(0.0, processCpuSeconds(pids_[i]) - start_[i]);
    if (i == 0) {
      result.server_cpu = used;
    }
    result.total_cpu += used;
  }
}

double percentile(std::vector<std::uint32_t>& samples, double p) {
  if (samples.empty()) {
    return 0;
  }
  std::sort(samples.begin(), samples.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * samples.size()));
  return samples[std::clamp<std::size_t>(rank, 1, samples.size()) - 1];
}

bool raiseFileLimit(std::size_t needed, std::string& error) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  rlim_t want = std::max<rlim_t>(limit.rlim_max, needed);
  rlimit raised{want, want};
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    raised = {limit.rlim_max, limit.rlim_max};  // beyond the hard limit needs privilege
    setrlimit(RLIMIT_NOFILE, &raised);
  }
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < needed) {
    error = "needs " + std::to_string(needed) + " file descriptors but the limit is " +
            std::to_string(limit.rlim_cur) +
            " and cannot be raised (raise it with `ulimit -n` where the benchmark starts)";
    return false;
  }
  return true;
}

}  // namespace mqtls::bench

// The process_* families every Prometheus client library exports (client_golang, client_python),
// so that dashboards and alerts written for them work on mqtls: CPU time, resident and virtual
// memory, open descriptors against their limit, start time. Read from /proc/self at each
// scrape, on the admin listener's thread.
#pragma once

#include <prometheus/metric_family.h>

#include <optional>
#include <string_view>
#include <vector>

namespace mqtls::ops {

struct ProcessFacts {
  double cpu_seconds = 0;  // user + system, all threads
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double start_time_seconds = 0;  // since the Unix epoch
};

// Parses /proc/PID/stat text (`stat`, comm may hold spaces and parentheses) with the boot time
// from /proc/stat (`boot_time`, seconds since the epoch), `ticks` clock ticks per second and
// `page_size` bytes per page. Fills cpu_seconds, resident_bytes, virtual_bytes and
// start_time_seconds; nullopt if the text is not a stat line.
std::optional<ProcessFacts> parseProcessStat(std::string_view stat, double boot_time, long ticks,
                                             long page_size);

// This process's facts now; families missing where /proc cannot be read.
std::vector<prometheus::MetricFamily> collectProcessMetrics();

}  // namespace mqtls::ops

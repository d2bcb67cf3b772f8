#include "report.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>

namespace mqtls::bench {
namespace {

using Row = std::vector<std::string>;

// Above this share of its CPU the load generator, not the target, may be the limit.
constexpr double kGeneratorBound = 0.9;

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string number(double value) {
  return format(value >= 100 || value == 0 ? "%.0f" : value >= 10 ? "%.1f" : "%.2f", value);
}

std::string ratio(double subject, double other) {
  return other > 0 ? format("%.2f", subject / other) : "-";
}

bool usable(const RunResult* result) {
  return result != nullptr && !result->skipped && result->failure.empty();
}

void printTable(const std::vector<Row>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      std::string pad(widths[i] - row[i].size(), ' ');
      line += i == 0 ? row[i] + pad : "  " + pad + row[i];
    }
    std::printf("%s\n", line.c_str());
  }
  std::printf("\n");
}

double rate(const RunResult& result) {
  return result.ops / result.seconds;
}

// Operations per second, and for throughput also payload MB/s.
std::string rateCell(const Scenario& scenario, const RunResult& result) {
  std::string cell = number(rate(result));
  if (scenario.kind == ScenarioKind::Throughput) {
    cell += " (" + number(result.payload_bytes / result.seconds / 1e6) + " MB/s)";
  } else if (scenario.resume) {
    cell += " (" + format("%.0f", 100.0 * result.resumed / result.ops) + "% resumed)";
  }
  return cell;
}

constexpr double kPercentiles[] = {50, 99, 99.9};

std::string latencyCell(RunResult& result) {
  std::string cell;
  for (double p : kPercentiles) {
    cell += (cell.empty() ? "" : " / ") + number(percentile(result.latency_us, p));
  }
  return cell;
}

std::string latencyRatio(RunResult& a, RunResult& b) {
  std::string cell;
  for (double p : kPercentiles) {
    cell += (cell.empty() ? "" : " / ") +
            ratio(percentile(a.latency_us, p), percentile(b.latency_us, p));
  }
  return cell;
}

double perConnection(double kib, const RunResult& result) {
  return result.connections > 0 ? kib / static_cast<double>(result.connections) : 0;
}

// Server-side cells of a target without PIDs: nothing was measured.
constexpr const char* kNotMeasured = "-";

std::string memoryCell(const RunResult& result) {
  if (!result.server_measured) {
    return kNotMeasured;
  }
  return number(perConnection(result.memory_server_kib, result)) + " / " +
         number(perConnection(result.memory_total_kib, result));
}

bool bothMeasured(const RunResult& a, const RunResult& b) {
  return a.server_measured && b.server_measured;
}

std::string cpuCell(const RunResult& result) {
  if (!result.server_measured) {
    return kNotMeasured;
  }
  return number(result.server_cpu * 1e6 / result.ops) + " / " +
         number(result.total_cpu * 1e6 / result.ops);
}

const char* unitOf(const Scenario& scenario) {
  switch (scenario.kind) {
    case ScenarioKind::Connect:
      return "conn/s";
    case ScenarioKind::Throughput:
      return "msg/s";
    case ScenarioKind::PingPong:
      return "round trips/s";
    case ScenarioKind::Idle:
      return "conn/s while opening";
  }
  return "";
}

class Report {
 public:
  Report(const Options& options, std::vector<RunResult>& results)
      : options_(options), results_(results) {}

  RunResult* find(const Scenario& scenario, const Target& target) {
    for (auto& result : results_) {
      if (result.scenario == scenario.name && result.target == target.name) {
        return &result;
      }
    }
    return nullptr;
  }

  Row header(const std::string& first, const std::string& ratio_suffix) const {
    Row row{first};
    for (const auto& target : options_.targets) {
      row.push_back(target.name);
    }
    for (std::size_t i = 1; i < options_.targets.size(); ++i) {
      row.push_back(options_.targets[0].name + "/" + options_.targets[i].name + ratio_suffix);
    }
    return row;
  }

  // One row per scenario accepted by `include`: cell(result) per target, then ratio(subject,
  // other) per other target. `with_unit` appends the unit to the scenario's title.
  void table(const Row& head, const std::function<bool(const Scenario&)>& include,
             const std::function<std::string(const Scenario&, RunResult&)>& cell,
             const std::function<std::string(RunResult&, RunResult&)>& ratio, bool with_unit) {
    std::vector<Row> rows{head};
    for (const auto& scenario : options_.scenarios) {
      if (!include(scenario)) {
        continue;
      }
      Row row{with_unit ? scenario.title + " (" + unitOf(scenario) + ")" : scenario.title};
      for (const auto& target : options_.targets) {
        RunResult* result = find(scenario, target);
        row.push_back(usable(result)                         ? cell(scenario, *result)
                      : result == nullptr || result->skipped ? "-"
                                                             : "FAILED");
      }
      RunResult* subject = find(scenario, options_.targets[0]);
      for (std::size_t i = 1; i < options_.targets.size(); ++i) {
        RunResult* other = find(scenario, options_.targets[i]);
        row.push_back(usable(subject) && usable(other) ? ratio(*subject, *other) : "-");
      }
      rows.push_back(row);
    }
    printTable(rows);
  }

  void details() {
    std::printf("Details (server CPU: share of one core used by all of the target's processes)\n");
    for (const auto& scenario : options_.scenarios) {
      for (const auto& target : options_.targets) {
        RunResult* result = find(scenario, target);
        if (result == nullptr || result->skipped) {
          continue;
        }
        std::printf("  %-24s %-16s ", scenario.title.c_str(), target.name.c_str());
        if (!result->failure.empty()) {
          std::printf("FAILED: %s\n", result->failure.c_str());
          continue;
        }
        std::printf("%s; %llu ops in %.2f s", result->tls.c_str(),
                    static_cast<unsigned long long>(result->ops), result->seconds);
        if (scenario.resume) {
          std::printf("; resumed %.1f%%", 100.0 * result->resumed / result->ops);
        }
        if (scenario.kind != ScenarioKind::PingPong && target.tls) {
          std::printf("; client chain %s", options_.chain == Chain::Leaf ? "leaf only" : "full");
        }
        if (scenario.kind == ScenarioKind::Idle && result->server_measured) {
          std::printf("; %llu held open, RSS +%.0f KiB (TLS process) / +%.0f KiB (all)",
                      static_cast<unsigned long long>(result->connections),
                      result->memory_server_kib, result->memory_total_kib);
        }
        double generator = result->generator_cpu / result->seconds;
        std::printf("; %s %llu",
                    scenario.kind == ScenarioKind::Connect || scenario.kind == ScenarioKind::Idle
                        ? "errors"
                        : "lost",
                    static_cast<unsigned long long>(result->errors));
        if (result->server_measured) {
          std::printf("; server CPU %.0f%%", 100 * result->total_cpu / result->seconds);
        }
        std::printf("; generator CPU %.0f%%%s\n", 100 * generator,
                    generator >= kGeneratorBound ? " (generator-bound: rate understated)" : "");
      }
    }
    std::printf("\n");
  }

 private:
  const Options& options_;
  std::vector<RunResult>& results_;
};

}  // namespace

void printProgress(const Scenario& scenario, const RunResult& result) {
  if (result.skipped) {
    return;
  }
  if (scenario.kind == ScenarioKind::Idle && result.connections > 0) {
    std::printf("  %-24s %-16s idle connections: %llu open, %llu errors", scenario.title.c_str(),
                result.target.c_str(), static_cast<unsigned long long>(result.connections),
                static_cast<unsigned long long>(result.errors));
    if (result.server_measured) {
      std::printf(", %.1f KiB per connection (RSS delta / N; %.1f KiB with all server processes)",
                  perConnection(result.memory_server_kib, result),
                  perConnection(result.memory_total_kib, result));
    }
    std::printf("\n");
    if (result.server_measured && result.memory_server_kib <= 0) {
      std::printf(
          "  %-24s %-16s (memory did not grow: the process reuses memory kept from an "
          "earlier run; measure on a freshly started target)\n",
          scenario.title.c_str(), result.target.c_str());
    }
  }
  if (!result.failure.empty()) {
    std::printf("  %-24s %-16s FAILED: %s\n", scenario.title.c_str(), result.target.c_str(),
                result.failure.c_str());
  } else {
    std::printf("  %-24s %-16s %s %s", scenario.title.c_str(), result.target.c_str(),
                number(result.ops / result.seconds).c_str(), unitOf(scenario));
    if (result.server_measured) {
      std::printf(", CPU %.2f us/op", result.total_cpu * 1e6 / result.ops);
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

void printReport(const Options& options, std::vector<RunResult>& results) {
  Report report(options, results);
  const std::string& subject = options.targets[0].name;
  auto all = [](const Scenario&) { return true; };
  auto timed = [](const Scenario& s) { return s.kind != ScenarioKind::Idle; };
  auto idle = [](const Scenario& s) { return s.kind == ScenarioKind::Idle; };
  std::printf("\nRates, operations per second (higher is better; ratio > 1: %s is faster)\n",
              subject.c_str());
  report.table(
      report.header("scenario", ""), all, rateCell,
      [](RunResult& a, RunResult& b) { return ratio(rate(a), rate(b)); }, true);
  if (std::any_of(options.scenarios.begin(), options.scenarios.end(), timed)) {
    std::printf(
        "Latency p50 / p99 / p99.9 in us (connect: TCP connect to CONNACK; publish and "
        "ping-pong:\npublish to delivery, flat out mostly the window's queueing; lower is "
        "better)\n");
    report.table(
        report.header("scenario", " p50/p99/p99.9"), timed,
        [](const Scenario&, RunResult& r) { return latencyCell(r); }, latencyRatio, false);
  }
  if (std::any_of(options.scenarios.begin(), options.scenarios.end(), idle)) {
    std::printf(
        "Idle memory per connection in KiB (VmRSS with all open minus before opening, / N):\n"
        "TLS-terminating process / all server-side processes (lower is better; the ratio\n"
        "compares the TLS-terminating processes: a broker shared by targets may keep memory\n"
        "from an earlier run)\n");
    report.table(
        report.header("scenario", " TLS process"), idle,
        [](const Scenario&, RunResult& r) { return memoryCell(r); },
        [](RunResult& a, RunResult& b) {
          return bothMeasured(a, b) ? ratio(perConnection(a.memory_server_kib, a),
                                            perConnection(b.memory_server_kib, b))
                                    : kNotMeasured;
        },
        false);
  }
  std::printf(
      "Server CPU per operation in us: TLS-terminating process / all server-side processes\n"
      "incl. the broker (lower is better; the ratio compares the totals)\n");
  report.table(
      report.header("scenario", " total"), all,
      [](const Scenario&, RunResult& r) { return cpuCell(r); },
      [](RunResult& a, RunResult& b) {
        return bothMeasured(a, b) ? ratio(a.total_cpu / a.ops, b.total_cpu / b.ops) : kNotMeasured;
      },
      false);
  report.details();
}

}  // namespace mqtls::bench

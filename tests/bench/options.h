// Command line of mqtls_bench: the targets to compare, the client identity, the scenarios and
// their timing.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "transport.h"

namespace mqtls::bench {

struct Target {
  std::string name;
  bool tls = true;
  sockaddr_in address{};
  std::vector<int> pids;  // first: the process terminating TLS; the rest: other server processes
};

enum class ScenarioKind { Connect, Throughput, PingPong };

struct Scenario {
  std::string name;   // as given on the command line
  std::string title;  // as printed
  ScenarioKind kind = ScenarioKind::Connect;
  int tls_version = 0;  // TLS1_2_VERSION or TLS1_3_VERSION
  bool resume = false;
  std::size_t payload = 0;
};

struct Options {
  std::vector<Target> targets;  // the first is the subject; ratios compare it to the others
  TlsFiles client;              // publishers and connect loops
  TlsFiles subscriber;          // the subscriber (defaults to the client identity)
  std::vector<Scenario> scenarios;
  double duration = 5;
  double warmup = 1;
  int concurrency = 16;
  int publishers = 1;
  std::size_t window = 256 * 1024;  // payload bytes in flight per publisher
};

// All known scenarios, in the order they run by default.
const std::vector<Scenario>& allScenarios();

// Parses argv; on error or --help prints to stderr/stdout and returns the exit code to use.
std::optional<int> parseOptions(int argc, char** argv, Options& options);

}  // namespace mqtls::bench

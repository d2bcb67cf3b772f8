// Command line of mqtls-bench: the targets to compare, the client identity, the scenarios and
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
  Endpoint endpoint;
  std::string endpoint_note;  // addresses of the host passed over for this one, and why
  std::vector<int> pids;  // first: the process terminating TLS; the rest: other server processes
};

enum class ScenarioKind { Connect, Throughput, PingPong, Idle };

// Which client certificate file the client connections present.
enum class Chain { Full, Leaf };

struct Scenario {
  std::string name;   // as given on the command line
  std::string title;  // as printed
  ScenarioKind kind = ScenarioKind::Connect;
  int tls_version = 0;  // TLS1_2_VERSION or TLS1_3_VERSION
  bool resume = false;
  std::size_t payload = 0;
  int qos = 0;                  // publish scenarios: --qos
  std::size_t connections = 0;  // idle scenarios: connections held open
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
  int subscribers = 1;                  // each receives every message; deliveries count
  std::size_t window = 256 * 1024;      // payload bytes in flight per publisher
  int qos = 0;                          // 0 or 1, for the publish scenarios
  double rate = 0;                      // messages/s across all publishers; 0: flat out
  std::string topic_prefix = "bench";   // topics are PREFIX/TARGET/SCENARIO/PID
  Chain chain = Chain::Full;            // leaf + intermediate, or leaf only (the `client` files)
  std::size_t idle_connections = 1000;  // for the scenario "idle"
  int idle_inflight = 200;              // idle: handshakes in flight at once
  int source_addresses = 0;  // idle, to a 127.x target: 127.0.0.1..127.0.0.K; 0: automatic
};

// All known scenarios, in the order they run by default.
const std::vector<Scenario>& allScenarios();

// The most connections any selected scenario holds open at once (idle scenarios), or 0.
std::size_t largestIdleRun(const Options& options);

// Parses argv; on error or --help prints to stderr/stdout and returns the exit code to use.
std::optional<int> parseOptions(int argc, char** argv, Options& options);

}  // namespace mqtls::bench

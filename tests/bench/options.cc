#include "options.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace mqtls::bench {
namespace {

constexpr const char* kUsage =
    "usage: mqtls-bench --target NAME=tls|plain:PORT[:PID[,PID...]] [--target ...]\n"
    "                   --cert FILE --key FILE [--ca FILE --verify-server]\n"
    "                   [--chain full|leaf [--leaf-cert FILE]]\n"
    "                   [--sub-cert FILE --sub-key FILE]\n"
    "                   [--host NAME|ADDRESS] [--server-name NAME]\n"
    "                   [--duration SEC] [--warmup SEC] [--concurrency N]\n"
    "                   [--publishers N] [--subscribers N] [--window BYTES] [--qos 0|1]\n"
    "                   [--rate MSG_PER_SEC] [--topic-prefix PREFIX]\n"
    "                   [--idle-connections N] [--idle-inflight N] [--source-addresses K]\n"
    "                   [--scenarios a,b,...]\n"
    "\n"
    "Runs each scenario against each target in turn (never two at once) and prints rates,\n"
    "latencies and server CPU per operation, with ratios of the first target to the others.\n"
    "PIDs are the target's server-side processes, the one terminating TLS first; their CPU\n"
    "time (from /proc/PID/stat) is reported per operation, their memory (VmRSS) for idle runs;\n"
    "a target on another machine has no PIDs, and its figures are the client side's only.\n"
    "\n"
    "--host:  where every target listens: a host name, an IPv4 or an IPv6 address (default\n"
    "         127.0.0.1). A name is resolved once; of several addresses, each target uses\n"
    "         the first that accepts a TCP connection (probed with a connect and a close).\n"
    "--server-name: the name sent as SNI and, with --verify-server, the name the server\n"
    "         certificate must carry (default: --host when it is a name; no SNI and the\n"
    "         address checked when it is an address).\n"
    "Scenarios: connect-tls13 connect-tls12 resume-tls13 resume-tls12 publish-64 publish-4k\n"
    "           publish-16k pingpong-64 (default: all of these); publish-SIZE and\n"
    "           pingpong-SIZE for any other payload size (bytes, or with k or m: KiB, MiB;\n"
    "           24 bytes to 16 MiB); and on request idle or\n"
    "           idle-N: N connections (default --idle-connections 1000) opened with at most\n"
    "           --idle-inflight (200) handshakes at once, held open --duration seconds,\n"
    "           checked with a PINGREQ each, then closed; prints the servers' memory per\n"
    "           connection. To a 127.x host, client sockets bind to 127.0.0.1..127.0.0.K in\n"
    "           rotation (K: --source-addresses, by default one per 20000 connections).\n"
    "--qos 1: publishers send QoS 1 and keep at most the window unacknowledged (PUBACK and\n"
    "         delivery); the subscriber subscribes at QoS 1 and acknowledges.\n"
    "--rate:  messages per second across all publishers (0, the default: flat out).\n"
    "--topic-prefix: publish scenarios use PREFIX/TARGET/SCENARIO/PID (default bench), which\n"
    "         the broker must let the client identity publish and subscribe to.\n"
    "--subscribers N: N subscribers on the topic (default 1), each receiving every message;\n"
    "         messages/s, MB/s and latencies then count deliveries.\n"
    "--chain: the client chain the connect loops, publishers and idle connections present:\n"
    "         full (--cert as given) or leaf (--leaf-cert, by default --cert with .pem\n"
    "         replaced by -leafonly.pem).\n";

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, separator);) {
    parts.push_back(part);
  }
  return parts;
}

// NAME=tls|plain:PORT[:PID[,PID...]], at one of `addresses` (the host's); false with `error`
// set if it is malformed.
bool parseTarget(const std::string& spec, const std::vector<Endpoint>& addresses, Target& target,
                 std::string& error) {
  error = "bad --target '" + spec + "'";
  auto equals = spec.find('=');
  if (equals == std::string::npos || equals == 0) {
    return false;
  }
  target.name = spec.substr(0, equals);
  auto fields = split(spec.substr(equals + 1), ':');
  if (fields.size() < 2 || fields.size() > 3 || (fields[0] != "tls" && fields[0] != "plain")) {
    return false;
  }
  target.tls = fields[0] == "tls";
  const int port = std::atoi(fields[1].c_str());
  if (fields[1].find_first_not_of("0123456789") != std::string::npos || port <= 0 || port > 65535) {
    error += ": the port must be in 1..65535";
    return false;
  }
  target.endpoint = pickEndpoint(addresses, static_cast<std::uint16_t>(port), target.endpoint_note);
  if (fields.size() == 3) {
    for (const auto& pid : split(fields[2], ',')) {
      target.pids.push_back(std::atoi(pid.c_str()));
    }
  }
  return true;
}

// "idle" (with --idle-connections) or "idle-N"; false for other names or a bad N.
bool idleScenario(const std::string& name, const Options& options, Scenario& scenario) {
  std::size_t count = options.idle_connections;
  if (name.rfind("idle-", 0) == 0) {
    char* end = nullptr;
    count = std::strtoull(name.c_str() + 5, &end, 10);
    if (end == name.c_str() + 5 || *end != '\0') {
      return false;
    }
  } else if (name != "idle") {
    return false;
  }
  if (count == 0) {
    return false;
  }
  scenario = {name,
              "idle " + std::to_string(count) + " connections",
              ScenarioKind::Idle,
              TLS1_3_VERSION,
              false,
              0,
              0,
              count};
  return true;
}

// "publish-SIZE" or "pingpong-SIZE", SIZE in bytes with an optional k (KiB) or m (MiB) suffix,
// from 24 bytes (a message's own header) to 16 MiB; false for other names or a bad size.
bool sizedScenario(const std::string& name, Scenario& scenario) {
  const bool ping_pong = name.rfind("pingpong-", 0) == 0;
  if (!ping_pong && name.rfind("publish-", 0) != 0) {
    return false;
  }
  constexpr unsigned long long kMaxBytes = 16ULL << 20;
  const char* size = name.c_str() + (ping_pong ? 9 : 8);
  if (*size < '0' || *size > '9') {
    return false;  // strtoull would take a sign or spaces too
  }
  char* end = nullptr;
  unsigned long long bytes = std::strtoull(size, &end, 10);
  if (bytes == 0 || bytes > kMaxBytes) {
    return false;
  }
  std::string unit = " B";
  if (*end == 'k' || *end == 'K' || *end == 'm' || *end == 'M') {
    const bool mebi = *end == 'm' || *end == 'M';
    unit = mebi ? " MiB" : " KiB";
    bytes <<= mebi ? 20 : 10;  // cannot wrap: bytes <= 16 MiB before the shift
    ++end;
  }
  if (*end != '\0' || bytes < 24 || bytes > kMaxBytes) {
    return false;
  }
  const std::string shown = unit == " B"     ? std::to_string(bytes)
                            : unit == " KiB" ? std::to_string(bytes >> 10)
                                             : std::to_string(bytes >> 20);
  scenario = {name,
              (ping_pong ? "ping-pong " : "publish QoS0 ") + shown + unit,
              ping_pong ? ScenarioKind::PingPong : ScenarioKind::Throughput,
              TLS1_3_VERSION,
              false,
              static_cast<std::size_t>(bytes),
              0,
              0};
  return true;
}

bool selectScenarios(const std::string& list, Options& options) {
  options.scenarios.clear();
  for (const auto& name : split(list, ',')) {
    bool found = false;
    for (const auto& scenario : allScenarios()) {
      if (scenario.name == name) {
        options.scenarios.push_back(scenario);
        found = true;
      }
    }
    Scenario other;
    if (!found && (idleScenario(name, options, other) || sizedScenario(name, other))) {
      options.scenarios.push_back(other);
      found = true;
    }
    if (!found) {
      std::fprintf(stderr, "mqtls-bench: unknown scenario '%s'\n", name.c_str());
      return false;
    }
  }
  return !options.scenarios.empty();
}

}  // namespace

const std::vector<Scenario>& allScenarios() {
  static const std::vector<Scenario> scenarios = {
      {"connect-tls13", "connect TLS1.3 full", ScenarioKind::Connect, TLS1_3_VERSION, false, 0},
      {"connect-tls12", "connect TLS1.2 full", ScenarioKind::Connect, TLS1_2_VERSION, false, 0},
      {"resume-tls13", "connect TLS1.3 resumed", ScenarioKind::Connect, TLS1_3_VERSION, true, 0},
      {"resume-tls12", "connect TLS1.2 resumed", ScenarioKind::Connect, TLS1_2_VERSION, true, 0},
      {"publish-64", "publish QoS0 64 B", ScenarioKind::Throughput, TLS1_3_VERSION, false, 64},
      {"publish-4k", "publish QoS0 4 KiB", ScenarioKind::Throughput, TLS1_3_VERSION, false, 4096},
      {"publish-16k", "publish QoS0 16 KiB", ScenarioKind::Throughput, TLS1_3_VERSION, false,
       16384},
      {"pingpong-64", "ping-pong 64 B", ScenarioKind::PingPong, TLS1_3_VERSION, false, 64},
  };
  return scenarios;
}

namespace {

// Applies one "--name value" option; false if the name is unknown.
bool applyOption(const std::string& name, const std::string& value, Options& options,
                 std::string& host, std::string& server_name, std::vector<std::string>& targets,
                 std::string& scenarios, std::string& leaf_cert) {
  if (name == "--target") {
    targets.push_back(value);
  } else if (name == "--host") {
    host = value;
  } else if (name == "--server-name") {
    server_name = value;
  } else if (name == "--ca") {
    options.client.ca = options.subscriber.ca = value;
  } else if (name == "--cert") {
    options.client.cert = value;
  } else if (name == "--key") {
    options.client.key = value;
  } else if (name == "--sub-cert") {
    options.subscriber.cert = value;
  } else if (name == "--sub-key") {
    options.subscriber.key = value;
  } else if (name == "--duration") {
    options.duration = std::atof(value.c_str());
  } else if (name == "--warmup") {
    options.warmup = std::atof(value.c_str());
  } else if (name == "--concurrency") {
    options.concurrency = std::atoi(value.c_str());
  } else if (name == "--publishers") {
    options.publishers = std::atoi(value.c_str());
  } else if (name == "--subscribers") {
    options.subscribers = std::atoi(value.c_str());
  } else if (name == "--window") {
    options.window = std::strtoull(value.c_str(), nullptr, 10);
  } else if (name == "--scenarios") {
    scenarios = value;
  } else if (name == "--qos") {
    options.qos = value == "0" ? 0 : value == "1" ? 1 : -1;
  } else if (name == "--topic-prefix") {
    options.topic_prefix = value;
    return !value.empty() && value.find_first_of("+#") == std::string::npos;
  } else if (name == "--rate") {
    options.rate = std::atof(value.c_str());
  } else if (name == "--chain") {
    options.chain = value == "leaf" ? Chain::Leaf : Chain::Full;
    return value == "leaf" || value == "full";
  } else if (name == "--leaf-cert") {
    leaf_cert = value;
  } else if (name == "--idle-connections") {
    options.idle_connections = std::strtoull(value.c_str(), nullptr, 10);
  } else if (name == "--idle-inflight") {
    options.idle_inflight = std::atoi(value.c_str());
  } else if (name == "--source-addresses") {
    options.source_addresses = std::atoi(value.c_str());
  } else {
    return false;
  }
  return true;
}

bool valid(const Options& options) {
  return !options.targets.empty() && !options.client.cert.empty() && !options.client.key.empty() &&
         options.duration > 0 && options.warmup >= 0 && options.concurrency >= 1 &&
         options.publishers >= 1 && options.subscribers >= 1 && options.window >= 1 &&
         options.qos >= 0 && options.rate >= 0 && options.idle_connections >= 1 &&
         options.idle_inflight >= 1 && options.source_addresses >= 0 &&
         options.source_addresses <= 254;
}

// Publish titles name the QoS in use.
void applyQos(Options& options) {
  for (auto& scenario : options.scenarios) {
    if (scenario.kind != ScenarioKind::Throughput) {
      continue;
    }
    scenario.qos = options.qos;
    auto at = scenario.title.find("QoS0");
    if (at != std::string::npos) {
      scenario.title.replace(at, 4, "QoS" + std::to_string(options.qos));
    }
  }
}

// --chain leaf: the leaf-only file given, or the one certs/gen.sh writes beside --cert.
void applyChain(Options& options, const std::string& leaf_cert) {
  if (options.chain != Chain::Leaf) {
    return;
  }
  std::string file = leaf_cert;
  const std::string suffix = ".pem";
  const std::string& cert = options.client.cert;
  if (file.empty() && cert.size() > suffix.size() &&
      cert.compare(cert.size() - suffix.size(), suffix.size(), suffix) == 0) {
    file = cert.substr(0, cert.size() - suffix.size()) + "-leafonly.pem";
  }
  options.client.cert = file.empty() ? cert : file;
}

}  // namespace

std::size_t largestIdleRun(const Options& options) {
  std::size_t largest = 0;
  for (const auto& scenario : options.scenarios) {
    if (scenario.kind == ScenarioKind::Idle) {
      largest = std::max(largest, scenario.connections);
    }
  }
  return largest;
}

std::optional<int> parseOptions(int argc, char** argv, Options& options) {
  std::string host = "127.0.0.1";
  std::string server_name;
  std::vector<std::string> target_specs;
  std::string scenarios;
  std::string leaf_cert;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--verify-server") {
      options.client.verify_server = options.subscriber.verify_server = true;
    } else if (i + 1 >= argc || !applyOption(arg, argv[++i], options, host, server_name,
                                             target_specs, scenarios, leaf_cert)) {
      std::fprintf(stderr, "mqtls-bench: unknown argument or missing value: '%s'\n%s", arg.c_str(),
                   kUsage);
      return 2;
    }
  }
  if (server_name.empty() && !isIpAddress(host)) {
    server_name = host;  // as any TLS client does with the name it connects to
  }
  std::vector<Endpoint> addresses;  // resolved once: every target at the same host
  std::string error;
  if (!resolveHost(host, addresses, error)) {
    std::fprintf(stderr, "mqtls-bench: %s\n", error.c_str());
    return 2;
  }
  for (const auto& spec : target_specs) {
    Target target;
    if (!parseTarget(spec, addresses, target, error)) {
      std::fprintf(stderr, "mqtls-bench: %s\n%s", error.c_str(), kUsage);
      return 2;
    }
    target.endpoint.server_name = server_name;
    options.targets.push_back(target);
  }
  options.client.server_identity = options.subscriber.server_identity =
      server_name.empty() ? host : server_name;
  if (options.subscriber.cert.empty()) {
    options.subscriber.cert = options.client.cert;
    options.subscriber.key = options.client.key;
  }
  if (scenarios.empty()) {
    options.scenarios = allScenarios();
  } else if (!selectScenarios(scenarios, options)) {
    return 2;
  }
  if (!valid(options)) {
    std::fprintf(stderr, "mqtls-bench: missing or invalid arguments\n%s", kUsage);
    return 2;
  }
  applyQos(options);
  applyChain(options, leaf_cert);
  return std::nullopt;
}

}  // namespace mqtls::bench

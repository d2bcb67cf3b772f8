#include "options.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace mqtls::bench {
namespace {

constexpr const char* kUsage =
    "usage: mqtls_bench --target NAME=tls|plain:PORT[:PID[,PID...]] [--target ...]\n"
    "                   --cert FILE --key FILE [--ca FILE --verify-server]\n"
    "                   [--sub-cert FILE --sub-key FILE] [--host 127.0.0.1]\n"
    "                   [--duration SEC] [--warmup SEC] [--concurrency N]\n"
    "                   [--publishers N] [--window BYTES] [--scenarios a,b,...]\n"
    "\n"
    "Runs each scenario against each target in turn (never two at once) and prints rates,\n"
    "latencies and server CPU per operation, with ratios of the first target to the others.\n"
    "PIDs are the target's server-side processes, the one terminating TLS first; their CPU\n"
    "time (from /proc/PID/stat) is reported per operation.\n"
    "\n"
    "Scenarios: connect-tls13 connect-tls12 resume-tls13 resume-tls12 publish-64 publish-4k\n"
    "           pingpong-64 (default: all)\n";

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, separator);) {
    parts.push_back(part);
  }
  return parts;
}

// NAME=tls|plain:PORT[:PID[,PID...]]
bool parseTarget(const std::string& spec, const std::string& host, Target& target) {
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
  int port = std::atoi(fields[1].c_str());
  target.address.sin_family = AF_INET;
  target.address.sin_port = htons(static_cast<std::uint16_t>(port));
  if (port <= 0 || port > 65535 ||
      inet_pton(AF_INET, host.c_str(), &target.address.sin_addr) != 1) {
    return false;
  }
  if (fields.size() == 3) {
    for (const auto& pid : split(fields[2], ',')) {
      target.pids.push_back(std::atoi(pid.c_str()));
    }
  }
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
    if (!found) {
      std::fprintf(stderr, "mqtls_bench: unknown scenario '%s'\n", name.c_str());
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
      {"pingpong-64", "ping-pong 64 B", ScenarioKind::PingPong, TLS1_3_VERSION, false, 64},
  };
  return scenarios;
}

namespace {

// Applies one "--name value" option; false if the name is unknown.
bool applyOption(const std::string& name, const std::string& value, Options& options,
                 std::string& host, std::vector<std::string>& targets, std::string& scenarios) {
  if (name == "--target") {
    targets.push_back(value);
  } else if (name == "--host") {
    host = value;
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
  } else if (name == "--window") {
    options.window = std::strtoull(value.c_str(), nullptr, 10);
  } else if (name == "--scenarios") {
    scenarios = value;
  } else {
    return false;
  }
  return true;
}

bool valid(const Options& options) {
  return !options.targets.empty() && !options.client.cert.empty() && !options.client.key.empty() &&
         options.duration > 0 && options.warmup >= 0 && options.concurrency >= 1 &&
         options.publishers >= 1 && options.window >= 1;
}

}  // namespace

std::optional<int> parseOptions(int argc, char** argv, Options& options) {
  std::string host = "127.0.0.1";
  std::vector<std::string> target_specs;
  std::string scenarios;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--verify-server") {
      options.client.verify_server = options.subscriber.verify_server = true;
    } else if (i + 1 >= argc ||
               !applyOption(arg, argv[++i], options, host, target_specs, scenarios)) {
      std::fprintf(stderr, "mqtls_bench: unknown argument or missing value: '%s'\n%s", arg.c_str(),
                   kUsage);
      return 2;
    }
  }
  for (const auto& spec : target_specs) {
    Target target;
    if (!parseTarget(spec, host, target)) {
      std::fprintf(stderr, "mqtls_bench: bad --target '%s'\n%s", spec.c_str(), kUsage);
      return 2;
    }
    options.targets.push_back(target);
  }
  options.client.server_ip = options.subscriber.server_ip = host;
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
    std::fprintf(stderr, "mqtls_bench: missing or invalid arguments\n%s", kUsage);
    return 2;
  }
  return std::nullopt;
}

}  // namespace mqtls::bench

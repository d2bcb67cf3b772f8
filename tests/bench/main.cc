// mqtls-bench: drives mutual-TLS MQTT load at several targets, one after the other, and prints
// how the first compares to the rest. Exit codes: 0 all targets worked, 1 a target failed
// (refused, closed or corrupted something), 2 bad usage or setup.
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <string>

#include "report.h"
#include "scenario.h"

namespace mqtls::bench {
namespace {

struct ContextSet {
  SslCtxPtr client;
  SslCtxPtr subscriber;
};

// Client contexts per TLS version; false (with a message) if the identity files are unusable.
bool makeContexts(const Options& options, std::map<int, ContextSet>& contexts) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    std::string error;
    ContextSet& set = contexts[version];
    set.client = makeClientContext(options.client, version, error);
    if (set.client) {
      set.subscriber = makeClientContext(options.subscriber, version, error);
    }
    if (!set.client || !set.subscriber) {
      std::fprintf(stderr, "mqtls-bench: %s\n", error.c_str());
      return false;
    }
  }
  return true;
}

void printSetup(const Options& options, const std::string& chain) {
  char rate[64] = "flat out";
  if (options.rate > 0) {
    std::snprintf(rate, sizeof rate, "%.0f msg/s", options.rate);
  }
  std::printf(
      "mqtls-bench with %s: %.1f s per run after %.1f s warm-up, %d connect loops, "
      "%d publisher(s), window %zu B, QoS %d, rate %s\n",
      OpenSSL_version(OPENSSL_VERSION), options.duration, options.warmup, options.concurrency,
      options.publishers, options.window, options.qos, rate);
  std::printf("  client chain: %s\n", chain.c_str());
  for (const auto& target : options.targets) {
    std::printf("  target %-16s %s %s", target.name.c_str(), target.tls ? "mTLS" : "plaintext",
                target.endpoint.text().c_str());
    if (target.tls && !target.endpoint.server_name.empty()) {
      std::printf(", server name %s", target.endpoint.server_name.c_str());
    }
    std::printf(target.pids.empty() ? ", no server pids (client-side figures only)"
                                    : ", server pids");
    for (int pid : target.pids) {
      std::printf(" %d", pid);
    }
    std::printf("\n");
    if (!target.endpoint_note.empty()) {
      std::printf("  target %-16s %s\n", target.name.c_str(), target.endpoint_note.c_str());
    }
  }
  std::printf("\n");
}

RunResult runOne(const Options& options, const Target& target, const Scenario& scenario,
                 const std::map<int, ContextSet>& contexts) {
  if (scenario.kind == ScenarioKind::Connect && !target.tls) {
    RunResult skipped;
    skipped.scenario = scenario.name;
    skipped.target = target.name;
    skipped.skipped = true;
    return skipped;
  }
  ClientContexts use;
  if (target.tls) {
    use.client = contexts.at(scenario.tls_version).client.get();
    use.subscriber = contexts.at(scenario.tls_version).subscriber.get();
  }
  RunResult result;
  switch (scenario.kind) {
    case ScenarioKind::Connect:
      result = runConnectScenario(options, target, scenario, use);
      break;
    case ScenarioKind::Idle:
      result = runIdleScenario(options, target, scenario, use);
      break;
    default:
      result = runPubSubScenario(options, target, scenario, use);
      break;
  }
  result.server_measured = !target.pids.empty();
  return result;
}

// The file descriptors the selected scenarios hold at once, with room for the rest.
bool raiseLimits(const Options& options) {
  std::size_t needed = largestIdleRun(options) + static_cast<std::size_t>(options.concurrency) +
                       static_cast<std::size_t>(options.publishers) + 64;
  std::string error;
  if (!raiseFileLimit(needed, error)) {
    std::fprintf(stderr, "mqtls-bench: %s\n", error.c_str());
    return false;
  }
  return true;
}

// "leaf + 1 intermediate (FILE)": what the client connections present, from the loaded chain.
std::string describeChain(const Options& options, SSL_CTX* ctx) {
  STACK_OF(X509)* extra = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &extra);
  int count = extra == nullptr ? 0 : sk_X509_num(extra);
  std::string text = count == 0 ? "leaf only" : "leaf + " + std::to_string(count) + " CA cert(s)";
  return text + " (" + options.client.cert + ")";
}

}  // namespace
}  // namespace mqtls::bench

int main(int argc, char** argv) {
  using namespace mqtls::bench;
  signal(SIGPIPE, SIG_IGN);
  Options options;
  if (auto code = parseOptions(argc, argv, options)) {
    return *code;
  }
  std::map<int, ContextSet> contexts;
  if (!raiseLimits(options) || !makeContexts(options, contexts)) {
    return 2;
  }
  printSetup(options, describeChain(options, contexts.at(TLS1_3_VERSION).client.get()));
  std::vector<RunResult> results;
  bool failed = false;
  // Scenario by scenario, each target in turn: drifting background load then affects all
  // targets of a scenario alike.
  for (const auto& scenario : options.scenarios) {
    for (const auto& target : options.targets) {
      results.push_back(runOne(options, target, scenario, contexts));
      printProgress(scenario, results.back());
      failed = failed || !results.back().failure.empty();
    }
  }
  printReport(options, results);
  if (failed) {
    std::printf("FAILED: at least one target did not work (see above)\n");
  }
  return failed ? 1 : 0;
}

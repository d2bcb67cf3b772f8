// Server: owns everything that lives as long as the process: the TLS context stores (one per
// listener), the workers and their threads, and the signal handling that drains them.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "config/model.h"
#include "net/worker.h"
#include "ops/metrics.h"
#include "tls/context_store.h"
#include "util/result.h"

namespace mqtls::net {

// Builds the TLS snapshot of every listener; on failure the message names each listener and
// key at fault. Used by `--check` and by Server::create.
Result<std::vector<tls::TlsContextPtr>> buildListenerContexts(const config::Config& config);

class Server {
 public:
  // Builds TLS contexts and binds every listener on every worker. Nothing is accepted yet.
  static Result<std::unique_ptr<Server>> create(const config::Config& config,
                                                ops::Metrics& metrics);
  ~Server();

  // Runs the workers until SIGTERM or SIGINT, then drains: listeners close at once, open
  // connections get limits.drain_timeout to finish, the rest are closed. A second signal closes
  // everything immediately. Returns the process exit code (0 after a drain).
  int run();

 private:
  Server(const config::Config& config, ops::Metrics& metrics);

  const config::Config& config_;
  ops::Metrics& metrics_;
  std::vector<std::unique_ptr<tls::ContextStore>> stores_;
  std::vector<ListenerRuntime> listeners_;
  ConnectionGate gate_;
  std::atomic<std::uint64_t> ids_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace mqtls::net

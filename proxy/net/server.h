// Server: owns everything that lives as long as the process: the TLS context stores (one per
// listener), the reloader that replaces their contexts, the workers and their threads, and the
// signal handling that drains them (SIGTERM, SIGINT), reloads (SIGHUP) or cycles the log level
// (SIGUSR1). It answers the admin listener's questions (ops::AdminActions).
#pragma once

#include <atomic>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "config/model.h"
#include "net/reloader.h"
#include "net/worker.h"
#include "ops/admin_actions.h"
#include "ops/metrics.h"
#include "tls/context_store.h"
#include "tls/library_contexts.h"
#include "tls/ocsp_cache.h"
#include "util/result.h"

namespace mqtls::net {

class Server final : public ops::AdminActions {
 public:
  // Binds every listener on every worker, serving contexts[i] (built by the startup check,
  // one per listener, non-null) on listener i of worker 0, and the same settings built in an
  // OpenSSL library context of their own on each further worker (tls::ContextStore::create).
  // `admin_context` (null without admin.tls) is kept up to date by the same reloads. Nothing is
  // accepted yet.
  static Result<std::unique_ptr<Server>> create(const config::Config& config,
                                                std::vector<tls::TlsContextPtr> contexts,
                                                tls::TlsContextPtr admin_context,
                                                ops::Metrics& metrics);
  ~Server() override;

  // The admin listener's current HTTPS context, or null without admin.tls. Any thread.
  tls::TlsContextPtr adminContext() const;

  // Runs the workers until SIGTERM or SIGINT, then drains: listeners close at once, open
  // connections get limits.drain_timeout to finish, the rest are closed. A second signal closes
  // everything immediately. Returns the process exit code (0 after a drain).
  int run();

  // The one reload entry point (SIGHUP, a future admin endpoint): re-reads the configuration
  // file and rebuilds every listener's TLS context; see Reloader::reload. Callable from any
  // thread; blocks until done and says per listener which files were used and what failed.
  ReloadResult reload(std::string_view trigger);

  // ops::AdminActions (see ops/admin_actions.h); callable from any thread.
  std::string notReadyReason() override;
  std::vector<ops::WorkerHeartbeat> heartbeats() override;
  ops::ReloadReport reload() override;
  ops::ConnectionList connections(std::size_t limit, std::chrono::milliseconds timeout) override;
  ops::CloseOutcome closeConnections(const ops::ConnectionFilter& filter,
                                     std::chrono::milliseconds timeout) override;

 private:
  // Admits at most `connection_limit` connections at once (limits.max_connections, or fewer
  // where the open-file limit allows fewer).
  Server(const config::Config& config, ops::Metrics& metrics, std::size_t connection_limit);

  const config::Config& config_;
  ops::Metrics& metrics_;
  const std::size_t connection_limit_;
  // One OpenSSL library context per worker; declared before everything made in them (contexts,
  // sessions, connections), so it is freed after them.
  std::unique_ptr<tls::LibraryContexts> libraries_;
  std::vector<std::unique_ptr<tls::ContextStore>> stores_;
  std::unique_ptr<tls::ContextStore> admin_store_;  // admin.tls; null without it
  std::vector<ListenerRuntime> listeners_;
  std::unique_ptr<Reloader> reloader_;
  ConnectionGate gate_;
  std::atomic<std::uint64_t> ids_{0};
  // OCSP answers, shared by the workers and kept across reloads; sized at start by the largest
  // tls.ocsp.cache_size of any listener or site.
  std::unique_ptr<tls::OcspCache> ocsp_cache_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> draining_{false};
};

}  // namespace mqtls::net

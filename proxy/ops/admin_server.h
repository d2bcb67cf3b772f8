// AdminServer: the admin HTTP listener (config: admin.listen), served by libevent's evhttp on a
// thread and event loop of its own, never on a worker's loop.
//
//   GET    /healthz            200 "ok" while every worker's loop turns; 503 naming a stalled one
//   GET    /readyz             200 "ready" when the proxy should get traffic (listeners bound,
//                              TLS contexts loaded, broker answering a connect); 503 with a
//                              one-line reason otherwise ("draining" after SIGTERM)
//   GET    /metrics            Prometheus text format of the Metrics registry
//   POST   /reload             Server::reload("admin"); 200 with the JSON result, 500 with the
//                              same JSON when a listener (or the configuration file) failed
//   GET    /connections?limit=N    JSON list of the open connections (default limit 1000)
//   DELETE /connections/{id}       close one connection now; 404 if no such connection
//   DELETE /connections?identity=X close every connection of a certificate identity; 404 if none
//   PUT    /log/level          body "debug" or {"level":"debug"}: the log level from now on
// With tls_context set, every connection is TLS (a connection that is not is answered 400 and
// closed), with the client certificate required when that context requires it.
// With allow_mutations false, POST, PUT and DELETE answer 403. Unknown paths answer 404, a known
// path with another method 405.
//
// The broker is checked by a TCP connect from this loop every `probe_interval`, from the start
// (probe_always), or only for as long as someone asked /readyz within `readiness_watch` (then a
// proxy that nobody asks about does not dial its broker). A /readyz without a recent check
// waits for one.
// The result is exported as the gauge mqtls_upstream_ready.
// Reload and the connection requests run on a helper thread, so a slow answer never holds up
// /healthz or /metrics.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/model.h"
#include "ops/admin_actions.h"
#include "ops/metrics.h"
#include "util/result.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace mqtls::ops {

class AdminServer {
 public:
  struct Settings {
    std::string listen;  // "host:port" or "[v6]:port"; port 0 picks a free port (tests)
    bool allow_mutations = true;
    config::Upstream upstream;
    std::chrono::milliseconds probe_interval{2000};
    std::chrono::milliseconds readiness_watch{60'000};
    bool probe_always = true;  // false: check only while /readyz is being asked
    std::chrono::milliseconds heartbeat_stale{3000};
    std::chrono::milliseconds worker_answer_timeout{2000};
    // Set: HTTPS only. Called for each accepted connection; gives the server context in force
    // (certificate, and client verification when required). Null answers are refused.
    std::function<std::shared_ptr<ssl_ctx_st>()> tls_context;
  };

  // Binds the listener and starts its thread. Fails, with a message naming the address, when
  // the address cannot be bound. `metrics` and `actions` must outlive the server.
  static Result<std::unique_ptr<AdminServer>> start(Settings settings, Metrics& metrics,
                                                    AdminActions& actions);
  // Stops the loop and the helper thread and joins them; idempotent. Requests still waiting
  // are answered 503.
  void stop();
  ~AdminServer();

  // The bound port (the one chosen when the address said port 0).
  std::uint16_t port() const;

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "host" and port of "host:port" / "[v6]:port"; fails on anything else.
Result<std::pair<std::string, std::uint16_t>> splitListenAddress(const std::string& listen);
// True for 127.0.0.0/8, ::1 and "localhost".
bool isLoopbackHost(const std::string& host);

}  // namespace mqtls::ops

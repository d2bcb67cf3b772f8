// AdminActions: what the admin HTTP listener (ops/admin_server.h) asks of the rest of the proxy,
// as plain structs, so that ops/ needs nothing from net/. The server (net/server.h) implements it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mqtls::ops {

// One open client connection as its worker saw it when asked.
struct ConnectionInfo {
  std::uint64_t id = 0;
  int worker = 0;
  std::string listener;
  std::string peer;         // "ip:port"
  std::string identity;     // certificate identity used, empty before admission or if none
  std::string client_id;    // as forwarded to the broker, empty before CONNECT
  std::string tls_version;  // empty while the handshake runs
  std::string state;        // the connection's state ("streaming", "handshaking", ...)
  bool resumed = false;
  int mqtt_level = 0;  // 3, 4, 5; 0 before CONNECT
  double age_seconds = 0;
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_from_broker = 0;
};

struct ConnectionList {
  std::vector<ConnectionInfo> connections;  // sorted by id, at most the limit asked for
  std::size_t total = 0;                    // open connections on the workers that answered
  std::vector<int> unanswered;              // workers that did not answer in time
};

// The connections to close: the one with `id`, or every one whose identity is `identity`.
struct ConnectionFilter {
  std::optional<std::uint64_t> id;
  std::optional<std::string> identity;
  bool matches(std::uint64_t connection_id, const std::string& connection_identity) const {
    return (!id || *id == connection_id) && (!identity || *identity == connection_identity);
  }
};

struct CloseOutcome {
  std::size_t closed = 0;
  std::vector<int> unanswered;  // workers that did not answer in time
};

struct WorkerHeartbeat {
  int worker = 0;
  bool running = false;           // false once its loop has ended (drained)
  double seconds_since_beat = 0;  // since its loop last turned the heartbeat timer
};

// What one reload did to one listener (see net/reloader.h ListenerReload).
struct ListenerReloadReport {
  std::string listener;
  std::string outcome;  // "reloaded", "unchanged", "waiting", "failed", "skipped"
  bool ok = true;       // false only for "failed"
  std::vector<std::string> files;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

struct ReloadReport {
  bool ok = true;
  std::vector<std::string> errors;  // the configuration file could not be used
  std::vector<std::string> warnings;
  std::vector<ListenerReloadReport> listeners;
};

class AdminActions {
 public:
  virtual ~AdminActions() = default;
  // Why the proxy should not receive traffic now ("draining", a listener without a TLS context),
  // or empty. The broker is checked by the admin listener itself. Thread-safe, never blocks.
  virtual std::string notReadyReason() = 0;
  // Every worker's heartbeat. Thread-safe, never blocks.
  virtual std::vector<WorkerHeartbeat> heartbeats() = 0;
  // Server::reload("admin"): re-reads the configuration and rebuilds the TLS contexts. Blocks
  // until done (bounded by the build of the contexts).
  virtual ReloadReport reload() = 0;
  // Asks every worker for its open connections; waits at most `timeout` for the answers.
  virtual ConnectionList connections(std::size_t limit, std::chrono::milliseconds timeout) = 0;
  // Asks every worker to close the connections matching `filter` at once; waits at most
  // `timeout` for the answers.
  virtual CloseOutcome closeConnections(const ConnectionFilter& filter,
                                        std::chrono::milliseconds timeout) = 0;
};

}  // namespace mqtls::ops

// Metrics: the one object that holds every Prometheus family mqtls exports. Created once by the
// server and passed by reference to whoever counts; no globals. All methods are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

namespace mqtls::ops {

enum class Direction { ClientToBroker, BrokerToClient };

class Metrics {
 public:
  Metrics();

  // Starts serving /metrics on "host:port". Fails with a message if it cannot bind.
  Status expose(const std::string& listen);

  // At process exit: leaves the HTTP endpoint running instead of stopping it, because its
  // server only notices a stop request after a 2 s poll; the process is about to end anyway.
  void detachExposerAtExit();

  void connectionAccepted(std::string_view listener);
  // Accept refused before TLS (e.g. "max_connections").
  void connectionRejected(std::string_view reason);
  void handshakeSucceeded(std::string_view tls_version, bool resumed);
  void handshakeFailed(std::string_view reason);
  // A CONNECT refused or a first packet rejected, by reason ("malformed", "bad_credentials", ...).
  void connectRefused(std::string_view reason);
  void connectForwarded();
  void upstreamFailed(std::string_view reason);
  void connectionClosed(std::string_view reason);
  void bytesForwarded(Direction direction, std::size_t bytes);
  void activeConnections(int delta);
  // One reload of the TLS contexts (file change, SIGHUP or admin request) ended: ok when every
  // listener's new context is in force. An ok reload also sets the last-success timestamp.
  void tlsReloaded(bool ok);
  // The TLS contexts in force were (re)loaded successfully at `unix_seconds` (also at start).
  void tlsLoadedAt(double unix_seconds);

  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>& accepted_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& handshakes_;
  prometheus::Family<prometheus::Counter>& handshake_failures_;
  prometheus::Family<prometheus::Counter>& connect_refused_;
  prometheus::Counter& connect_forwarded_;
  prometheus::Family<prometheus::Counter>& upstream_failures_;
  prometheus::Family<prometheus::Counter>& closed_;
  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Counter& bytes_to_broker_;
  prometheus::Counter& bytes_to_client_;
  prometheus::Gauge& active_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Counter& reloads_ok_;
  prometheus::Counter& reloads_failed_;
  prometheus::Gauge& last_reload_success_;
};

}  // namespace mqtls::ops

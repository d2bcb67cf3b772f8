#include "ops/metrics.h"

#include <chrono>

namespace mqtls::ops {
namespace {

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& registry, const char* name,
                                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

std::string label(std::string_view value) {
  return std::string(value);
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      accepted_(counter(*registry_, "mqtls_connections_accepted_total",
                        "TCP connections accepted, by listener")),
      rejected_(counter(*registry_, "mqtls_connections_rejected_total",
                        "TCP connections closed at accept, by reason")),
      handshakes_(counter(*registry_, "mqtls_tls_handshakes_total",
                          "Completed TLS handshakes, by version and resumption")),
      handshake_failures_(counter(*registry_, "mqtls_tls_handshake_failures_total",
                                  "Failed TLS handshakes, by reason")),
      connect_refused_(counter(*registry_, "mqtls_mqtt_connect_refused_total",
                               "Connections refused at the first packet, by reason")),
      connect_forwarded_(counter(*registry_, "mqtls_mqtt_connect_forwarded_total",
                                 "CONNECT packets accepted and forwarded to the broker")
                             .Add({})),
      upstream_failures_(counter(*registry_, "mqtls_upstream_connect_failures_total",
                                 "Failed connections to the broker, by reason")),
      closed_(counter(*registry_, "mqtls_connections_closed_total",
                      "Closed client connections, by close reason")),
      bytes_(counter(*registry_, "mqtls_forwarded_bytes_total", "Bytes forwarded, by direction")),
      bytes_to_broker_(bytes_.Add({{"direction", "client_to_broker"}})),
      bytes_to_client_(bytes_.Add({{"direction", "broker_to_client"}})),
      active_(prometheus::BuildGauge()
                  .Name("mqtls_connections_active")
                  .Help("Client connections currently open")
                  .Register(*registry_)
                  .Add({})),
      reloads_(counter(*registry_, "mqtls_tls_reloads_total",
                       "Reloads of the TLS contexts, by result (ok: every listener reloaded)")),
      reloads_ok_(reloads_.Add({{"result", "ok"}})),
      reloads_failed_(reloads_.Add({{"result", "failed"}})),
      last_reload_success_(prometheus::BuildGauge()
                               .Name("mqtls_tls_last_reload_success_timestamp_seconds")
                               .Help("Unix time the TLS contexts in force were last loaded "
                                     "successfully (at start or by a reload)")
                               .Register(*registry_)
                               .Add({})),
      upstream_ready_(prometheus::BuildGauge()
                          .Name("mqtls_upstream_ready")
                          .Help("1 when the broker answered the admin listener's last connect "
                                "check, else 0 (checked while /readyz is being asked)")
                          .Register(*registry_)
                          .Add({})) {}

void Metrics::staleCrlAccepted(std::string_view listener) {
  stale_crl_accepted_.Add({{"listener", label(listener)}}).Increment();
}

void Metrics::connectionAccepted(std::string_view listener) {
  accepted_.Add({{"listener", label(listener)}}).Increment();
}

void Metrics::connectionRejected(std::string_view reason) {
  rejected_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::handshakeSucceeded(std::string_view tls_version, bool resumed) {
  handshakes_.Add({{"version", label(tls_version)}, {"resumed", resumed ? "true" : "false"}})
      .Increment();
}

void Metrics::handshakeFailed(std::string_view reason) {
  handshake_failures_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::connectRefused(std::string_view reason) {
  connect_refused_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::connectForwarded() {
  connect_forwarded_.Increment();
}

void Metrics::upstreamFailed(std::string_view reason) {
  upstream_failures_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::connectionClosed(std::string_view reason) {
  closed_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::bytesForwarded(Direction direction, std::size_t bytes) {
  (direction == Direction::ClientToBroker ? bytes_to_broker_ : bytes_to_client_)
      .Increment(static_cast<double>(bytes));
}

void Metrics::activeConnections(int delta) {
  active_.Increment(delta);
}

void Metrics::tlsReloaded(bool ok) {
  (ok ? reloads_ok_ : reloads_failed_).Increment();
  if (ok) {
    tlsLoadedAt(
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  }
}

void Metrics::tlsLoadedAt(double unix_seconds) {
  last_reload_success_.Set(unix_seconds);
}

void Metrics::upstreamReady(bool ready) {
  upstream_ready_.Set(ready ? 1 : 0);
}

void Metrics::ocspChecked(std::string_view result, double latency_seconds) {
  ocsp_checks_.Add({{"result", label(result)}}).Increment();
  if (latency_seconds >= 0) {
    ocsp_latency_.Observe(latency_seconds);
  }
}

void Metrics::ocspCacheLookup(bool hit) {
  (hit ? ocsp_cache_hits_ : ocsp_cache_misses_).Increment();
}

}  // namespace mqtls::ops

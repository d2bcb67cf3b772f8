// Metrics: the one object that holds every Prometheus family mqtls exports. Created once by the
// server and passed by reference to whoever counts; no globals. All methods are thread-safe.
// The admin listener (ops/admin_server.h) serves them at /metrics.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
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
  // The admin listener's last check of the broker: it answered a TCP connect (see
  // ops/admin_server.h).
  void upstreamReady(bool ready);
  // A client certificate of `listener` was accepted although a CRL it was checked against is
  // past its nextUpdate (tls.crl_next_update lenient).
  void staleCrlAccepted(std::string_view listener);

  // One OCSP check of a client certificate ended: result good, revoked, unknown or unavailable
  // (no answer, a timeout or an invalid answer); latency_seconds < 0 when no request was made.
  void ocspChecked(std::string_view result, double latency_seconds);
  // An OCSP answer was (hit) or was not (miss) found in the cache.
  void ocspCacheLookup(bool hit);

  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
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
  prometheus::Gauge& upstream_ready_;
  prometheus::Family<prometheus::Counter>& stale_crl_accepted_ =
      prometheus::BuildCounter()
          .Name("mqtls_tls_stale_crl_accepted_total")
          .Help(
              "Client certificates accepted although a CRL they were checked against is past "
              "its nextUpdate (crl_next_update lenient), by listener")
          .Register(*registry_);
  prometheus::Family<prometheus::Counter>& ocsp_checks_ =
      prometheus::BuildCounter()
          .Name("mqtls_ocsp_checks_total")
          .Help(
              "OCSP checks of client certificates, by result (good, revoked, unknown, "
              "unavailable)")
          .Register(*registry_);
  prometheus::Counter& ocsp_cache_hits_ = prometheus::BuildCounter()
                                              .Name("mqtls_ocsp_cache_hits_total")
                                              .Help("OCSP answers found in the cache")
                                              .Register(*registry_)
                                              .Add({});
  prometheus::Counter& ocsp_cache_misses_ =
      prometheus::BuildCounter()
          .Name("mqtls_ocsp_cache_misses_total")
          .Help("OCSP checks that found no answer in the cache and asked the responder")
          .Register(*registry_)
          .Add({});
  prometheus::Histogram& ocsp_latency_ =
      prometheus::BuildHistogram()
          .Name("mqtls_ocsp_request_duration_seconds")
          .Help("Time from sending an OCSP request to its answer, failure or timeout")
          .Register(*registry_)
          .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                           1, 2.5, 5});
};

}  // namespace mqtls::ops

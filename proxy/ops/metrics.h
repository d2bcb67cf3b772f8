// Metrics: the one object that holds every Prometheus family mqtls exports. Created once by the
// server and passed by reference to whoever counts; no globals. All methods are thread-safe.
// The admin listener (ops/admin_server.h) serves them at /metrics.
//
// Cost on the data path: counters of a fixed label set (bytes, packets, per-listener children)
// are looked up once and kept; counting them is one atomic add. Label sets that vary (close
// reasons, refusal reasons, negotiated ciphers) are looked up per connection, never per packet.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ops/rate_limit.h"
#include "util/result.h"

namespace mqtls::ops {

enum class Direction { ClientToBroker, BrokerToClient };

// The result label of mqtls_tls_handshakes_total.
enum class HandshakeResult : std::uint8_t {
  Ok,
  Resumed,
  NoCertificate,
  UnknownCa,
  Expired,
  NotYetValid,
  Revoked,
  BadCertificate,
  CrlExpired,
  ProtocolVersion,
  NoSharedCipher,
  Timeout,
  Other,
};
inline constexpr std::size_t kHandshakeResults = 13;
std::string_view handshakeResultName(HandshakeResult result);
// The result of a failed handshake from its reason (tls::HandshakeFailure::reason, or
// "timeout"); reasons without a result of their own (not_tls, eof, error) are Other.
HandshakeResult handshakeResultOf(std::string_view failure_reason);

// The label children of one listener, made once (Metrics::listener) and kept by whoever counts;
// every method is one atomic operation.
class ListenerMetrics {
 public:
  void accepted() { accepted_->Increment(); }
  void opened() { open_->Increment(); }
  void closed() { open_->Decrement(); }
  void handshake(HandshakeResult result) {
    handshakes_[static_cast<std::size_t>(result)]->Increment();
  }
  // Accept to handshake done, of a successful handshake.
  void handshakeDuration(double seconds) { handshake_duration_->Observe(seconds); }
  // A client certificate was accepted although a CRL it was checked against is past its
  // nextUpdate (tls.crl_next_update lenient).
  void staleCrlAccepted() { stale_crl_->Increment(); }
  // A client chain was found verified in the context's cache (hit) or verified in full (miss).
  void verifyCacheLookup(bool hit) { (hit ? verify_cache_hit_ : verify_cache_miss_)->Increment(); }

 private:
  friend class Metrics;
  prometheus::Counter* accepted_ = nullptr;
  prometheus::Gauge* open_ = nullptr;
  std::array<prometheus::Counter*, kHandshakeResults> handshakes_{};
  prometheus::Histogram* handshake_duration_ = nullptr;
  prometheus::Counter* stale_crl_ = nullptr;
  prometheus::Counter* verify_cache_hit_ = nullptr;
  prometheus::Counter* verify_cache_miss_ = nullptr;
};

// An expiry date of loaded TLS material (see tls/material_facts.h), as the gauges label it.
struct CertificateExpiry {
  std::string listener;  // the listener, or "<listener>/<first site name>" for an SNI site
  std::string role;      // server, chain, client_ca
  std::string subject;
  double not_after = 0;  // Unix seconds
};
struct CrlExpiry {
  std::string listener;
  std::string issuer;
  double next_update = 0;  // Unix seconds
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The children of `listener`, made on the first call; the reference stays valid as long as
  // this object. Takes a lock: call once per listener (at start), not per event.
  ListenerMetrics& listener(std::string_view name);

  void connectionAccepted(std::string_view listener) { this->listener(listener).accepted(); }
  // Accept refused before TLS (e.g. "max_connections").
  void connectionRejected(std::string_view reason);
  // A handshake succeeded with this version and cipher (mqtls_tls_negotiated_total).
  void tlsNegotiated(std::string_view version, std::string_view cipher);
  // mqtls_tls_handshake_failures_total{reason}, the detailed reason (tls::HandshakeFailure).
  void handshakeFailed(std::string_view reason);
  // A CONNECT refused or a first packet rejected, by close reason ("malformed", ...).
  void connectRefused(std::string_view reason);
  void connectForwarded();
  // One CONNECT answered: version "3.1", "3.1.1", "5.0" (or "unknown"); result "accepted" or the
  // refusal's reason name.
  void mqttConnect(std::string_view version, std::string_view result);
  // The identity policy refused a CONNECT under `rule` (username_mismatch, anonymous, ...).
  void identityRefused(std::string_view rule);
  void upstreamFailed(std::string_view reason);
  // The broker's TCP (or unix socket) connect took `seconds`.
  void upstreamConnected(double seconds);
  void connectionClosed(std::string_view reason);
  // Bytes and whole MQTT packets (where the stream is framed) moved. Nothing is counted while
  // traffic counting is off (see countTraffic).
  void bytesForwarded(Direction direction, std::size_t bytes) {
    if (count_traffic_) {
      countBytes(direction, bytes);
    }
  }
  void packetsForwarded(Direction direction, std::size_t packets) {
    if (count_traffic_) {
      countPackets(direction, packets);
    }
  }
  // Whether bytesForwarded/packetsForwarded count (the default). Off when nothing can read the
  // metrics (no admin listener): the data path then touches no shared counter. Set before the
  // workers start.
  void countTraffic(bool on) { count_traffic_ = on; }
  // mqtls_connections_active (no labels; kept beside mqtls_connections_open{listener}).
  void activeConnections(int delta);
  void maxConnections(std::size_t limit);
  // One reload of the TLS contexts (file change, SIGHUP or admin request) ended: ok when every
  // listener's new context is in force. An ok reload also sets the last-success timestamp.
  void tlsReloaded(bool ok);
  // The TLS contexts in force were (re)loaded successfully at `unix_seconds` (also at start).
  void tlsLoadedAt(double unix_seconds);
  // The expiry gauges of everything `listener` (a configured listener, with its sites) loaded
  // now. Label sets it had before and no longer has are removed.
  void setExpiries(const std::string& listener, const std::vector<CertificateExpiry>& certificates,
                   const std::vector<CrlExpiry>& crls);
  // The admin listener's last check of the broker: it answered a TCP connect (see
  // ops/admin_server.h).
  void upstreamReady(bool ready);
  void staleCrlAccepted(std::string_view listener) { this->listener(listener).staleCrlAccepted(); }

  // One OCSP check of a client certificate ended: result good, revoked, unknown or unavailable
  // (no answer, a timeout or an invalid answer); latency_seconds < 0 when no request was made.
  void ocspChecked(std::string_view result, double latency_seconds);
  // An OCSP answer was (hit) or was not (miss) found in the cache.
  void ocspCacheLookup(bool hit);

  // The rate limit of per-connection warn lines; its drops count in
  // mqtls_log_lines_suppressed_total. Kept here because every place that logs such a line
  // already holds this object.
  RateLimitedLog& limitedLog() { return limited_log_; }

  prometheus::Registry& registry() { return *registry_; }

 private:
  using CounterFamily = prometheus::Family<prometheus::Counter>;
  using GaugeFamily = prometheus::Family<prometheus::Gauge>;
  using HistogramFamily = prometheus::Family<prometheus::Histogram>;

  std::shared_ptr<prometheus::Registry> registry_;
  CounterFamily& accepted_;
  GaugeFamily& open_;
  CounterFamily& rejected_;
  CounterFamily& handshakes_;
  HistogramFamily& handshake_duration_;
  CounterFamily& negotiated_;
  CounterFamily& handshake_failures_;
  CounterFamily& connect_refused_;
  prometheus::Counter& connect_forwarded_;
  CounterFamily& connects_;
  std::array<prometheus::Counter*, 3> connects_accepted_{};  // 3.1, 3.1.1, 5.0
  CounterFamily& identity_refusals_;
  CounterFamily& upstream_failures_;
  prometheus::Histogram& upstream_duration_;
  CounterFamily& closed_;
  CounterFamily& bytes_;
  void countBytes(Direction direction, std::size_t bytes);
  void countPackets(Direction direction, std::size_t packets);

  bool count_traffic_ = true;
  prometheus::Counter& bytes_to_broker_;
  prometheus::Counter& bytes_to_client_;
  CounterFamily& packets_;
  prometheus::Counter& packets_to_broker_;
  prometheus::Counter& packets_to_client_;
  prometheus::Gauge& active_;
  prometheus::Gauge& max_connections_;
  CounterFamily& reloads_;
  prometheus::Counter& reloads_ok_;
  prometheus::Counter& reloads_failed_;
  prometheus::Gauge& last_reload_success_;
  GaugeFamily& not_after_;
  GaugeFamily& crl_next_update_;
  prometheus::Gauge& upstream_ready_;
  CounterFamily& stale_crl_accepted_;
  CounterFamily& verify_cache_;
  CounterFamily& ocsp_checks_;
  prometheus::Counter& ocsp_cache_hits_;
  prometheus::Counter& ocsp_cache_misses_;
  prometheus::Histogram& ocsp_latency_;
  prometheus::Counter& log_suppressed_;
  RateLimitedLog limited_log_;

  std::mutex mutex_;  // guards listeners_ and expiries_
  std::map<std::string, std::unique_ptr<ListenerMetrics>, std::less<>> listeners_;
  // The expiry gauges each listener set last, to remove those its material no longer has.
  std::map<std::string, std::vector<prometheus::Gauge*>> expiries_;
};

}  // namespace mqtls::ops

#include "ops/metrics.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>

#include "util/version.h"

namespace mqtls::ops {
namespace {

constexpr std::array<std::string_view, kHandshakeResults> kResultNames{
    "ok",          "resumed",          "no_certificate",   "unknown_ca",
    "expired",     "not_yet_valid",    "revoked",          "bad_certificate",
    "crl_expired", "protocol_version", "no_shared_cipher", "timeout",
    "other"};

// Rate limit of per-connection warn lines: this many lines per key per interval.
constexpr std::size_t kLogBurst = 10;
constexpr std::chrono::seconds kLogInterval{10};

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& registry, const char* name,
                                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& registry, const char* name,
                                             const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Histogram>& histogram(prometheus::Registry& registry,
                                                     const char* name, const char* help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

prometheus::Histogram::BucketBoundaries latencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string label(std::string_view value) {
  return std::string(value);
}

}  // namespace

std::string_view handshakeResultName(HandshakeResult result) {
  return kResultNames[static_cast<std::size_t>(result)];
}

HandshakeResult handshakeResultOf(std::string_view failure_reason) {
  // Ok and Resumed are successes, never the result of a failure reason.
  for (std::size_t i = 2; i < kHandshakeResults; ++i) {
    if (kResultNames[i] == failure_reason) {
      return static_cast<HandshakeResult>(i);
    }
  }
  return HandshakeResult::Other;
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      accepted_(counter(*registry_, "mqtls_connections_accepted_total",
                        "TCP connections accepted, by listener")),
      open_(gauge(*registry_, "mqtls_connections_open", "Client connections open, by listener")),
      rejected_(counter(*registry_, "mqtls_connections_rejected_total",
                        "TCP connections closed at accept, before TLS, by reason")),
      handshakes_(counter(*registry_, "mqtls_tls_handshakes_total",
                          "TLS handshakes ended, by listener and result (ok, resumed, or why "
                          "it failed)")),
      handshake_duration_(histogram(*registry_, "mqtls_tls_handshake_duration_seconds",
                                    "Time from accept to a successful handshake, by listener")),
      negotiated_(counter(*registry_, "mqtls_tls_negotiated_total",
                          "Successful TLS handshakes, by protocol version and cipher")),
      handshake_failures_(counter(*registry_, "mqtls_tls_handshake_failures_total",
                                  "Failed TLS handshakes, by detailed reason")),
      connect_refused_(counter(*registry_, "mqtls_mqtt_connect_refused_total",
                               "Connections refused at the first packet, by reason")),
      connect_forwarded_(counter(*registry_, "mqtls_mqtt_connect_forwarded_total",
                                 "CONNECT packets accepted and forwarded to the broker")
                             .Add({})),
      connects_(counter(*registry_, "mqtls_mqtt_connects_total",
                        "CONNECT packets answered, by MQTT version and result (accepted or the "
                        "refusal's reason)")),
      identity_refusals_(counter(*registry_, "mqtls_identity_refusals_total",
                                 "CONNECTs refused by the identity policy, by rule")),
      upstream_failures_(counter(*registry_, "mqtls_upstream_connect_failures_total",
                                 "Failed connections to the broker, by reason")),
      upstream_duration_(histogram(*registry_, "mqtls_upstream_connect_duration_seconds",
                                   "Time to connect to the broker")
                             .Add({}, latencyBuckets())),
      closed_(counter(*registry_, "mqtls_connections_closed_total",
                      "Closed client connections, by close reason")),
      bytes_(counter(*registry_, "mqtls_forwarded_bytes_total", "Bytes forwarded, by direction")),
      bytes_to_broker_(bytes_.Add({{"direction", "client_to_broker"}})),
      bytes_to_client_(bytes_.Add({{"direction", "broker_to_client"}})),
      packets_(counter(*registry_, "mqtls_forwarded_packets_total",
                       "MQTT packets forwarded where the stream is framed, by direction")),
      packets_to_broker_(packets_.Add({{"direction", "client_to_broker"}})),
      packets_to_client_(packets_.Add({{"direction", "broker_to_client"}})),
      active_(gauge(*registry_, "mqtls_connections_active",
                    "Client connections currently open (all listeners; see "
                    "mqtls_connections_open)")
                  .Add({})),
      max_connections_(
          gauge(*registry_, "mqtls_max_connections", "limits.max_connections").Add({})),
      reloads_(counter(*registry_, "mqtls_tls_reloads_total",
                       "Reloads of the TLS contexts, by result (ok: every listener reloaded)")),
      reloads_ok_(reloads_.Add({{"result", "ok"}})),
      reloads_failed_(reloads_.Add({{"result", "failed"}})),
      last_reload_success_(gauge(*registry_, "mqtls_tls_last_reload_success_timestamp_seconds",
                                 "Unix time the TLS contexts in force were last loaded "
                                 "successfully (at start or by a reload)")
                               .Add({})),
      not_after_(gauge(*registry_, "mqtls_certificate_not_after_timestamp_seconds",
                       "notAfter (Unix time) of each loaded certificate, by listener, role "
                       "(server, chain, client_ca) and subject")),
      crl_next_update_(gauge(*registry_, "mqtls_crl_next_update_timestamp_seconds",
                             "nextUpdate (Unix time) of each loaded CRL, by listener and issuer")),
      upstream_ready_(gauge(*registry_, "mqtls_upstream_ready",
                            "1 when the broker answered the admin listener's last connect "
                            "check, else 0 (checked while /readyz is being asked)")
                          .Add({})),
      stale_crl_accepted_(counter(*registry_, "mqtls_tls_stale_crl_accepted_total",
                                  "Client certificates accepted although a CRL they were checked "
                                  "against is past its nextUpdate (crl_next_update lenient), by "
                                  "listener")),
      verify_cache_(counter(*registry_, "mqtls_tls_verify_cache_total",
                            "Client certificate chains found already verified (result hit) or "
                            "verified in full (miss), by listener (tls.verify_cache_size)")),
      ocsp_checks_(counter(*registry_, "mqtls_ocsp_checks_total",
                           "OCSP checks of client certificates, by result (good, revoked, "
                           "unknown, unavailable)")),
      ocsp_cache_hits_(
          counter(*registry_, "mqtls_ocsp_cache_hits_total", "OCSP answers found in the cache")
              .Add({})),
      ocsp_cache_misses_(counter(*registry_, "mqtls_ocsp_cache_misses_total",
                                 "OCSP checks that found no answer in the cache and asked the "
                                 "responder")
                             .Add({})),
      ocsp_latency_(
          histogram(*registry_, "mqtls_ocsp_request_duration_seconds",
                    "Time from sending an OCSP request to its answer, failure or timeout")
              .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                               0.5, 1, 2.5, 5})),
      log_suppressed_(counter(*registry_, "mqtls_log_lines_suppressed_total",
                              "Repeated warn and error lines dropped by the log rate limit")
                          .Add({})),
      limited_log_(kLogBurst, kLogInterval, [this] { log_suppressed_.Increment(); }) {
  gauge(*registry_, "mqtls_build_info", "Always 1; the labels name the build")
      .Add({{"version", kVersion}, {"openssl", OpenSSL_version(OPENSSL_VERSION_STRING)}})
      .Set(1);
  const char* versions[] = {"3.1", "3.1.1", "5.0"};
  for (std::size_t i = 0; i < connects_accepted_.size(); ++i) {
    connects_accepted_[i] = &connects_.Add({{"version", versions[i]}, {"result", "accepted"}});
  }
}

ListenerMetrics& Metrics::listener(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto found = listeners_.find(name);
  if (found != listeners_.end()) {
    return *found->second;
  }
  auto made = std::make_unique<ListenerMetrics>();
  const std::string value(name);
  made->accepted_ = &accepted_.Add({{"listener", value}});
  made->open_ = &open_.Add({{"listener", value}});
  for (std::size_t i = 0; i < kHandshakeResults; ++i) {
    made->handshakes_[i] =
        &handshakes_.Add({{"listener", value}, {"result", label(kResultNames[i])}});
  }
  made->handshake_duration_ = &handshake_duration_.Add({{"listener", value}}, latencyBuckets());
  made->stale_crl_ = &stale_crl_accepted_.Add({{"listener", value}});
  made->verify_cache_hit_ = &verify_cache_.Add({{"listener", value}, {"result", "hit"}});
  made->verify_cache_miss_ = &verify_cache_.Add({{"listener", value}, {"result", "miss"}});
  return *listeners_.emplace(value, std::move(made)).first->second;
}

void Metrics::connectionRejected(std::string_view reason) {
  rejected_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::tlsNegotiated(std::string_view version, std::string_view cipher) {
  negotiated_.Add({{"version", label(version)}, {"cipher", label(cipher)}}).Increment();
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

void Metrics::mqttConnect(std::string_view version, std::string_view result) {
  if (result == "accepted") {
    for (std::size_t i = 0; i < connects_accepted_.size(); ++i) {
      if (version == std::array<std::string_view, 3>{"3.1", "3.1.1", "5.0"}[i]) {
        connects_accepted_[i]->Increment();
        return;
      }
    }
  }
  connects_.Add({{"version", label(version)}, {"result", label(result)}}).Increment();
}

void Metrics::identityRefused(std::string_view rule) {
  identity_refusals_.Add({{"rule", label(rule)}}).Increment();
}

void Metrics::upstreamFailed(std::string_view reason) {
  upstream_failures_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::upstreamConnected(double seconds) {
  upstream_duration_.Observe(seconds);
}

void Metrics::connectionClosed(std::string_view reason) {
  closed_.Add({{"reason", label(reason)}}).Increment();
}

void Metrics::countBytes(Direction direction, std::size_t bytes) {
  (direction == Direction::ClientToBroker ? bytes_to_broker_ : bytes_to_client_)
      .Increment(static_cast<double>(bytes));
}

void Metrics::countPackets(Direction direction, std::size_t packets) {
  (direction == Direction::ClientToBroker ? packets_to_broker_ : packets_to_client_)
      .Increment(static_cast<double>(packets));
}

void Metrics::activeConnections(int delta) {
  active_.Increment(delta);
}

void Metrics::maxConnections(std::size_t limit) {
  max_connections_.Set(static_cast<double>(limit));
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

void Metrics::setExpiries(const std::string& listener,
                          const std::vector<CertificateExpiry>& certificates,
                          const std::vector<CrlExpiry>& crls) {
  std::lock_guard lock(mutex_);
  std::vector<prometheus::Gauge*> now;
  for (const auto& c : certificates) {
    auto& g = not_after_.Add({{"listener", c.listener}, {"role", c.role}, {"subject", c.subject}});
    g.Set(c.not_after);
    now.push_back(&g);
  }
  for (const auto& c : crls) {
    auto& g = crl_next_update_.Add({{"listener", c.listener}, {"issuer", c.issuer}});
    g.Set(c.next_update);
    now.push_back(&g);
  }
  for (prometheus::Gauge* old : expiries_[listener]) {
    if (std::find(now.begin(), now.end(), old) == now.end()) {
      not_after_.Remove(old);  // a pointer of the other family is ignored by Remove
      crl_next_update_.Remove(old);
    }
  }
  expiries_[listener] = std::move(now);
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

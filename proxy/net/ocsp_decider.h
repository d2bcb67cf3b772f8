// OcspDecider: checks a client certificate with its CA's OCSP responder before the identity
// policy (the inner decider) sees the CONNECT.
//
// Why after the handshake: OpenSSL 3.0 can suspend certificate verification only on the client
// side (SSL_set_retry_verify), so a server cannot hold its handshake while an OCSP request
// runs. The check therefore starts when the CONNECT arrives, the connection waits for it in its
// Admitting state (under limits.admission_timeout), and the broker is dialled only after a good
// answer. A cached answer decides at once; a miss starts an asynchronous HTTP request on the
// worker's loop, which is cancelled when the connection goes away.
//
// Outcomes: good -> the inner decider; revoked -> refused (Not authorized, close reason
// ocsp_revoked); unknown -> refused (ocsp_unknown) unless policy fail_open; no answer, timeout
// or an invalid answer -> refused (Server unavailable, ocsp_unavailable) with fail_closed, let
// through to the inner decider (logged at warn) with fail_open.
#pragma once

#include <memory>
#include <string>

#include "net/admission.h"
#include "net/connection.h"
#include "tls/ocsp.h"
#include "tls/ocsp_cache.h"

namespace mqtls::net {

class OcspDecider final : public AdmissionDecider {
 public:
  // `host` gives the loop, resolver and metrics; `inner` decides after a good answer; `cache`
  // is shared by every worker of the process. All must outlive the decider and its checks.
  OcspDecider(ConnectionHost& host, AdmissionDecider& inner, tls::OcspCache& cache)
      : host_(host), inner_(inner), cache_(cache) {}

  // Without a client certificate, or with tls.ocsp off for the site the client reached, the
  // inner decider answers directly.
  std::unique_ptr<PendingAdmission> decide(AdmissionRequest request, VerdictCallback done) override;

  // The largest responder answer read.
  static constexpr std::size_t kMaxResponseBytes = 64 * 1024;

 private:
  class Check;

  // Applies an answer (Invalid: no usable answer, `answer.reason` says why): calls the inner
  // decider or `done`. Returns the inner decider's pending handle, if any. Touches nothing of
  // the caller after calling `done`.
  std::unique_ptr<PendingAdmission> conclude(const tls::OcspAnswer& answer,
                                             config::OcspPolicy policy, double latency_seconds,
                                             AdmissionRequest request, VerdictCallback done);

  ConnectionHost& host_;
  AdmissionDecider& inner_;
  tls::OcspCache& cache_;
};

}  // namespace mqtls::net

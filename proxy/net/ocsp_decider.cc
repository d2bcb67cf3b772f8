#include "net/ocsp_decider.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "net/ocsp_fetcher.h"
#include "tls/context.h"

namespace mqtls::net {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct StoreDeleter {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
using SharedStorePtr = std::unique_ptr<X509_STORE, StoreDeleter>;

tls::OcspAnswer unavailable(std::string reason) {
  return tls::OcspAnswer{tls::OcspStatus::Invalid, std::move(reason), std::chrono::seconds(0)};
}

Verdict refusal(mqtt::Refusal code, std::string close_reason, std::string reason) {
  Verdict verdict;
  verdict.refusal = code;
  verdict.close_reason = std::move(close_reason);
  verdict.reason = std::move(reason);
  return verdict;
}

}  // namespace

// One OCSP request in flight for one connection. Owns copies of everything the check needs
// (the SSL is not ours after decide() returns); destroying it cancels the request.
class OcspDecider::Check final : public PendingAdmission {
 public:
  Check(OcspDecider& decider, AdmissionRequest request, VerdictCallback done, tls::OcspQuery query,
        X509Ptr leaf, X509Ptr issuer, SharedStorePtr store, std::string key,
        config::OcspPolicy policy)
      : decider_(decider),
        request_(std::move(request)),
        done_(std::move(done)),
        query_(std::move(query)),
        leaf_(std::move(leaf)),
        issuer_(std::move(issuer)),
        store_(std::move(store)),
        key_(std::move(key)),
        policy_(policy) {
    request_.ssl = nullptr;  // valid during decide() only
  }
  ~Check() override { *alive_ = false; }

  void setFetcher(std::unique_ptr<OcspFetcher> fetcher) { fetcher_ = std::move(fetcher); }
  const std::vector<std::uint8_t>& requestDer() const { return query_.request_der; }
  bool waitingForInner() const { return inner_ != nullptr; }

  // The fetch ended: checks and caches the answer, then concludes. Touches nothing of this
  // object once conclude() may have called back (which may destroy it).
  void onFetched(OcspFetchResult result) {
    const double latency = std::chrono::duration<double>(SteadyClock::now() - started_).count();
    tls::OcspAnswer answer = result.ok ? tls::checkOcspResponse(result.body, query_, store_.get(),
                                                                issuer_.get(), leaf_.get())
                                       : unavailable("responder: " + result.error);
    decider_.cache_.store(key_, answer);
    auto alive = alive_;
    auto inner = decider_.conclude(answer, policy_, latency, std::move(request_), std::move(done_));
    if (*alive) {
      inner_ = std::move(inner);
    }
  }

 private:
  OcspDecider& decider_;
  AdmissionRequest request_;
  VerdictCallback done_;
  tls::OcspQuery query_;
  X509Ptr leaf_;
  X509Ptr issuer_;
  SharedStorePtr store_;
  std::string key_;
  config::OcspPolicy policy_;
  SteadyClock::time_point started_ = SteadyClock::now();
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<OcspFetcher> fetcher_;
  std::unique_ptr<PendingAdmission> inner_;  // the inner decider's, after a good answer
};

std::unique_ptr<PendingAdmission> OcspDecider::decide(AdmissionRequest request,
                                                      VerdictCallback done) {
  SSL* ssl = request.ssl;
  const config::TlsSettings* site = ssl != nullptr ? tls::siteSettings(ssl) : nullptr;
  X509* leaf = ssl != nullptr ? SSL_get0_peer_certificate(ssl) : nullptr;
  if (site == nullptr || site->ocsp.mode == config::OcspMode::Off || leaf == nullptr ||
      !request.peer_error.empty()) {
    return inner_.decide(std::move(request), std::move(done));
  }
  const config::OcspSettings& ocsp = site->ocsp;
  X509_STORE* store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
  X509Ptr issuer = tls::findIssuer(leaf, SSL_get0_verified_chain(ssl), store);
  const std::string url = ocsp.responder.empty() ? tls::ocspUrlOf(leaf) : ocsp.responder;
  if (!issuer) {
    return conclude(unavailable("the issuer of the client certificate is not known"), ocsp.policy,
                    -1, std::move(request), std::move(done));
  }
  if (url.empty()) {
    return conclude(unavailable("no responder: the certificate names no http OCSP URL and "
                                "tls.ocsp.responder is not set"),
                    ocsp.policy, -1, std::move(request), std::move(done));
  }
  auto query = tls::buildOcspQuery(leaf, issuer.get());
  if (!query) {
    return conclude(unavailable(query.error().message), ocsp.policy, -1, std::move(request),
                    std::move(done));
  }
  std::string key = tls::OcspCache::key(query->id_der, url);
  if (auto cached = cache_.find(key)) {
    host_.metrics().ocspCacheLookup(true);
    return conclude(*cached, ocsp.policy, -1, std::move(request), std::move(done));
  }
  host_.metrics().ocspCacheLookup(false);
  X509_up_ref(leaf);
  X509_STORE_up_ref(store);
  auto check = std::make_unique<Check>(*this, std::move(request), std::move(done),
                                       std::move(*query), X509Ptr(leaf), std::move(issuer),
                                       SharedStorePtr(store), std::move(key), ocsp.policy);
  Check* raw = check.get();
  auto fetcher = OcspFetcher::start(
      host_.base(), host_.dns(), url, raw->requestDer(), ocsp.timeout, kMaxResponseBytes,
      [raw](OcspFetchResult result) { raw->onFetched(std::move(result)); });
  if (!fetcher) {
    // Concluded at once: `done` was called, or handed to the inner decider, whose pending
    // handle the check then holds.
    raw->onFetched(OcspFetchResult{false, {}, fetcher.error().message});
    return raw->waitingForInner() ? std::move(check) : nullptr;
  }
  raw->setFetcher(std::move(*fetcher));
  return check;
}

std::unique_ptr<PendingAdmission> OcspDecider::conclude(const tls::OcspAnswer& answer,
                                                        config::OcspPolicy policy,
                                                        double latency_seconds,
                                                        AdmissionRequest request,
                                                        VerdictCallback done) {
  const bool fail_open = policy == config::OcspPolicy::FailOpen;
  const char* result = answer.status == tls::OcspStatus::Invalid
                           ? "unavailable"
                           : tls::ocspStatusName(answer.status);
  host_.metrics().ocspChecked(result, latency_seconds);
  switch (answer.status) {
    case tls::OcspStatus::Good:
      return inner_.decide(std::move(request), std::move(done));
    case tls::OcspStatus::Revoked:
      done(refusal(mqtt::Refusal::NotAuthorized, "ocsp_revoked", "OCSP: " + answer.reason));
      return nullptr;
    case tls::OcspStatus::Unknown:
      if (!fail_open) {
        done(refusal(mqtt::Refusal::NotAuthorized, "ocsp_unknown", "OCSP: " + answer.reason));
        return nullptr;
      }
      break;
    case tls::OcspStatus::Invalid:
      if (!fail_open) {
        done(refusal(mqtt::Refusal::ServerUnavailable, "ocsp_unavailable",
                     "OCSP: " + answer.reason));
        return nullptr;
      }
      break;
  }
  spdlog::warn("connection {}: OCSP check inconclusive ({}: {}); accepted by policy fail_open",
               request.connection_id, result, answer.reason);
  return inner_.decide(std::move(request), std::move(done));
}

}  // namespace mqtls::net

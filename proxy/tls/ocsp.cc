#include "tls/ocsp.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <strings.h>

#include <algorithm>
#include <cstring>

namespace mqtls::tls {
namespace {

using OcspResponsePtr = std::unique_ptr<OCSP_RESPONSE, OpenSslDeleter<OCSP_RESPONSE_free>>;
using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, OpenSslDeleter<OCSP_BASICRESP_free>>;

// Leaves the OpenSSL error queue empty whichever way a check ends.
struct ErrorQueueGuard {
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

template <typename T, typename Encode>
std::vector<std::uint8_t> encode(T* object, Encode encoder) {
  const int size = encoder(object, nullptr);
  if (size <= 0) {
    return {};
  }
  std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
  unsigned char* p = out.data();
  encoder(object, &p);
  return out;
}

// Seconds from now until `time` (negative when past), or `fallback` when null or unreadable.
long long secondsUntil(const ASN1_TIME* time, long long fallback) {
  int days = 0;
  int seconds = 0;
  if (time == nullptr || ASN1_TIME_diff(&days, &seconds, nullptr, time) != 1) {
    return fallback;
  }
  return static_cast<long long>(days) * 86400 + seconds;
}

// A store holding only the certificates of `trusted`: the responder's signature is checked
// against the same CAs as the client, but without the CRL flags a listener may have set
// (those would demand a CRL for the responder's own chain).
X509StorePtr certificatesOf(X509_STORE* trusted) {
  X509StorePtr copy(X509_STORE_new());
  if (!copy || trusted == nullptr) {
    return copy;
  }
  X509_STORE_lock(trusted);
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(trusted);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) {
      X509_STORE_add_cert(copy.get(), cert);
    }
  }
  X509_STORE_unlock(trusted);
  return copy;
}

OcspAnswer invalid(std::string reason) {
  return OcspAnswer{OcspStatus::Invalid, std::move(reason), std::chrono::seconds(0)};
}

}  // namespace

const char* ocspStatusName(OcspStatus status) {
  switch (status) {
    case OcspStatus::Good:
      return "good";
    case OcspStatus::Revoked:
      return "revoked";
    case OcspStatus::Unknown:
      return "unknown";
    case OcspStatus::Invalid:
      break;
  }
  return "invalid";
}

Result<OcspQuery> buildOcspQuery(X509* leaf, X509* issuer, bool nonce) {
  ErrorQueueGuard guard;
  OcspQuery query;
  query.id.reset(OCSP_cert_to_id(nullptr, leaf, issuer));
  query.request.reset(OCSP_REQUEST_new());
  if (!query.id || !query.request) {
    return Error{"cannot build an OCSP certificate id"};
  }
  OCSP_CERTID* copy = OCSP_CERTID_dup(query.id.get());
  if (copy == nullptr || OCSP_request_add0_id(query.request.get(), copy) == nullptr) {
    OCSP_CERTID_free(copy);
    return Error{"cannot add the certificate id to the OCSP request"};
  }
  if (nonce && OCSP_request_add1_nonce(query.request.get(), nullptr, -1) != 1) {
    return Error{"cannot add a nonce to the OCSP request"};
  }
  const auto id_der = encode(query.id.get(), i2d_OCSP_CERTID);
  query.id_der.assign(id_der.begin(), id_der.end());
  query.request_der = encode(query.request.get(), i2d_OCSP_REQUEST);
  if (query.id_der.empty() || query.request_der.empty()) {
    return Error{"cannot encode the OCSP request"};
  }
  return query;
}

OcspAnswer checkOcspResponse(std::span<const std::uint8_t> der, const OcspQuery& query,
                             X509_STORE* store, X509* issuer, X509* leaf) {
  ErrorQueueGuard guard;
  const unsigned char* p = der.data();
  OcspResponsePtr response(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
  if (!response) {
    return invalid("not a DER OCSP response");
  }
  const int response_status = OCSP_response_status(response.get());
  if (response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return invalid(std::string("responder answered ") + OCSP_response_status_str(response_status));
  }
  OcspBasicPtr basic(OCSP_response_get1_basic(response.get()));
  if (!basic) {
    return invalid("response holds no basic OCSP response");
  }
  if (OCSP_check_nonce(query.request.get(), basic.get()) == 0) {
    return invalid("response nonce does not match the request's");
  }
  X509StorePtr trusted = certificatesOf(store);
  X509StackPtr extra(sk_X509_new_null());
  if (!trusted || !extra) {
    return invalid("out of memory checking the response");
  }
  if (issuer != nullptr) {
    X509_up_ref(issuer);
    if (sk_X509_push(extra.get(), issuer) <= 0) {
      X509_free(issuer);
      return invalid("out of memory checking the response");
    }
  }
  if (OCSP_basic_verify(basic.get(), extra.get(), trusted.get(), 0) <= 0) {
    return invalid("response signature not verified: " +
                   takeOpenSslError("signer not trusted for this issuer"));
  }
  int status = -1;
  int reason = -1;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (OCSP_resp_find_status(basic.get(), query.id.get(), &status, &reason, &revoked_at,
                            &this_update, &next_update) != 1) {
    return invalid("response has no answer for this certificate");
  }
  if (OCSP_check_validity(this_update, next_update, kOcspLeewaySeconds, -1) != 1) {
    return invalid("response is outside its thisUpdate..nextUpdate window");
  }
  const long long default_keep = kDefaultOcspKeep.count();
  long long keep = next_update != nullptr ? secondsUntil(next_update, 0) : default_keep;
  if (leaf != nullptr) {
    keep = std::min(keep, secondsUntil(X509_get0_notAfter(leaf), 0));
  }
  OcspAnswer answer;
  answer.keep_for = std::chrono::seconds(std::max(keep, 0LL));
  switch (status) {
    case V_OCSP_CERTSTATUS_GOOD:
      answer.status = OcspStatus::Good;
      answer.reason = "good";
      break;
    case V_OCSP_CERTSTATUS_REVOKED:
      answer.status = OcspStatus::Revoked;
      answer.reason = std::string("revoked (") +
                      (reason >= 0 ? OCSP_crl_reason_str(reason) : "no reason given") + ")";
      break;
    default:
      answer.status = OcspStatus::Unknown;
      answer.reason = "responder does not know this certificate";
      break;
  }
  return answer;
}

std::string ocspUrlOf(X509* leaf) {
  std::string url;
  STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(leaf);
  for (int i = 0; i < sk_OPENSSL_STRING_num(urls) && url.empty(); ++i) {
    const char* candidate = sk_OPENSSL_STRING_value(urls, i);
    if (candidate != nullptr && strncasecmp(candidate, "http://", 7) == 0) {
      url = candidate;
    }
  }
  X509_email_free(urls);
  return url;
}

X509Ptr findIssuer(X509* leaf, STACK_OF(X509) * verified_chain, X509_STORE* store) {
  ErrorQueueGuard guard;
  if (verified_chain != nullptr && sk_X509_num(verified_chain) >= 2) {
    X509* issuer = sk_X509_value(verified_chain, 1);
    X509_up_ref(issuer);
    return X509Ptr(issuer);
  }
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || store == nullptr || X509_STORE_CTX_init(ctx.get(), store, leaf, nullptr) != 1) {
    return nullptr;
  }
  X509* issuer = nullptr;
  if (X509_STORE_CTX_get1_issuer(&issuer, ctx.get(), leaf) != 1 || issuer == nullptr) {
    return nullptr;
  }
  X509Ptr owned(issuer);
  if (X509_cmp(owned.get(), leaf) == 0) {
    return nullptr;  // a self-signed leaf has no issuer to ask about it
  }
  return owned;
}

}  // namespace mqtls::tls

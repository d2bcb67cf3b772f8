// OCSP (RFC 6960) for client certificates, pure OpenSSL and no I/O: building the DER request for
// a certificate, and checking a DER response against the trust store that verified the client.
// Fetching is net/ocsp_fetcher.h's job, caching tls/ocsp_cache.h's, deciding net/ocsp_decider.h's.
#pragma once

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "util/openssl_ptr.h"
#include "util/result.h"

namespace mqtls::tls {

using OcspRequestPtr = std::unique_ptr<OCSP_REQUEST, OpenSslDeleter<OCSP_REQUEST_free>>;
using OcspCertIdPtr = std::unique_ptr<OCSP_CERTID, OpenSslDeleter<OCSP_CERTID_free>>;

// One certificate's question to a responder.
struct OcspQuery {
  OcspCertIdPtr id;        // the certificate id (SHA-1 of issuer name and key, serial)
  OcspRequestPtr request;  // kept to check the nonce of the answer
  std::string id_der;      // DER of `id`: the cache key, with the responder URL
  std::vector<std::uint8_t> request_der;  // what is POSTed
};

// Builds the request for `leaf` issued by `issuer`, with a random nonce when `nonce`. Fails only
// on allocation or encoding failure (message says which).
Result<OcspQuery> buildOcspQuery(X509* leaf, X509* issuer, bool nonce = true);

enum class OcspStatus { Good, Revoked, Unknown, Invalid };

// Metric label: good, revoked, unknown, invalid.
const char* ocspStatusName(OcspStatus status);

struct OcspAnswer {
  OcspStatus status = OcspStatus::Invalid;
  std::string reason;  // for the log: why invalid, or the revocation reason; never secrets
  // How long the answer may be trusted from now: until its nextUpdate (kDefaultOcspKeep when it
  // has none), never past the certificate's notAfter; zero for Invalid.
  std::chrono::seconds keep_for{0};
};

// How long an answer without nextUpdate is kept.
inline constexpr std::chrono::seconds kDefaultOcspKeep = std::chrono::hours(1);
// Clock skew allowed between us and the responder for thisUpdate / nextUpdate.
inline constexpr long kOcspLeewaySeconds = 300;

// Checks a DER response to `query`: successful response status; a basic response whose
// signature verifies (OCSP_basic_verify against `store`, the signer being the issuer or a
// responder the issuer delegated to); a nonce that matches if the response has one; a single
// response for query.id; thisUpdate / nextUpdate valid now (with kOcspLeewaySeconds). Anything
// else is Invalid with the reason. Never throws; leaves no OpenSSL error queued.
OcspAnswer checkOcspResponse(std::span<const std::uint8_t> der, const OcspQuery& query,
                             X509_STORE* store, X509* issuer, X509* leaf);

// The first http OCSP URL of `leaf`'s Authority Information Access extension, or empty.
std::string ocspUrlOf(X509* leaf);

// The issuer of `leaf`: the second certificate of `verified_chain` when there is one (a full
// handshake), else looked up in `store` (a resumed session has no verified chain). Null when
// neither gives one.
X509Ptr findIssuer(X509* leaf, STACK_OF(X509) * verified_chain, X509_STORE* store);

}  // namespace mqtls::tls

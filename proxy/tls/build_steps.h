// Steps of TlsContext::build (tls/context.h), one file each, sharing this internal header. Each
// step adds what it installs to the SSL_CTX and every problem it finds to the report; none
// throws. Not for use outside tls/.
#pragma once

#include <openssl/ssl.h>

#include <ctime>
#include <string>

#include "config/model.h"
#include "tls/context.h"
#include "tls/verified_chains.h"

namespace mqtls::tls::detail {

// Adds an error under settings key `key` (see SettingProblem).
void addError(BuildReport& report, std::string key, std::string message);

// `library` in the steps: the OpenSSL library context `ctx` was made in; what a step reads from
// files and keeps is made in it too, so that the context's handshakes fetch from that one
// library context (what a step only checks at build time may be read in the default one).

// The server chain and key (file or PKCS#11 token): key/cert match, leaf validity, chain order,
// OpenSSL's security level (server_identity.cc).
void installServerIdentity(SSL_CTX* ctx, const config::TlsSettings& settings, OSSL_LIB_CTX* library,
                           BuildReport& report);

// Client certificate verification: CA bundle, CRLs, verify mode and depth, and `chains` (if not
// null) as the cache of verified client chains; `chains` must outlive `ctx`'s every use
// (client_trust.cc).
void installClientVerification(SSL_CTX* ctx, const config::TlsSettings& settings,
                               OSSL_LIB_CTX* library, VerifiedChains* chains, BuildReport& report);

// The OCSP response of ocsp_staple, checked against the server chain and sent to clients that
// ask for certificate status; past its nextUpdate a warning and not sent (stapling.cc).
void installOcspStaple(SSL_CTX* ctx, const config::TlsSettings& settings, BuildReport& report);

// Resumption policy and callbacks; sessions live in the context's SessionResources
// (resumption.cc).
void installSessionPolicy(SSL_CTX* ctx, const config::TlsSettings& settings);

// `given` if it fits `settings` (its ticket key file read again, so a reload picks up new keys),
// else resources made for them; errors go to `report` (resumption.cc).
SessionResources resourcesFor(const config::TlsSettings& settings, const SessionResources& given,
                              BuildReport& report);

// Seconds since the epoch of an ASN1_TIME; false if it cannot be read.
bool toEpoch(const ASN1_TIME* time, std::time_t& out);

// The date an ASN1_TIME names, as "2021-01-01T00:00:00Z" (empty if it cannot be read).
std::string isoDate(const ASN1_TIME* time);

}  // namespace mqtls::tls::detail

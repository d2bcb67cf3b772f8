// PeerIdentity: what the proxy knows about a verified client certificate, extracted once after
// the handshake. Plain data so the identity policy above can use it without touching OpenSSL.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/result.h"

namespace mqtls::tls {

struct PeerIdentity {
  std::string common_name;  // last CN of the subject (most specific), empty if none
  std::string subject_dn;   // RFC 2253
  std::string issuer_dn;    // RFC 2253
  std::string serial_hex;   // upper-case hex, no separators
  std::vector<std::string> san_dns;
  std::vector<std::string> san_uri;
  std::vector<std::string> san_email;
  std::vector<std::string> san_ip;       // textual IPv4 / IPv6
  std::optional<std::string> spiffe_id;  // first san_uri starting with "spiffe://"
  std::string fingerprint_sha256;        // lower-case hex of the DER's SHA-256
  std::int64_t not_before = 0;           // Unix seconds
  std::int64_t not_after = 0;
};

// Extracts the identity of `leaf`. Fails if the certificate cannot be encoded, a name holds
// bytes that are not valid UTF-8 or contain NUL/control characters, or the subject or issuer DN
// does not print completely as such clean UTF-8 (such a value could smuggle something past the
// broker, or be a truncated DN, so the connection is refused rather than the value mangled).
Result<PeerIdentity> extractPeerIdentity(X509* leaf);

// An identity kept with a stored TLS session, so that resuming it needs no extraction. TLS 1.2
// resumes the stored session object itself; a TLS 1.3 resumption renews its session: OpenSSL
// copies the stored one, sharing its parsed client certificate and (through this slot's copy
// function) the identity kept with it. A kept identity lives as long as its session: in the
// store, and with every connection using it (a connection alone drops its own after admission).

// Extracts the identity of `session`'s client certificate and keeps it with the session, unless
// the session already carries it (copied from the session it renews). Call only while no other
// thread can see `session` (before it enters a store): a kept identity never changes, so readers
// take no lock. Does nothing if the session has no client certificate or the extraction fails
// (the connection then extracts, and fails, itself).
void keepPeerIdentity(SSL_SESSION* session);

// The identity kept with `session` for the client certificate it holds, or null.
std::shared_ptr<const PeerIdentity> keptPeerIdentity(const SSL_SESSION* session);

}  // namespace mqtls::tls

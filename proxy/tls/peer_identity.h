// PeerIdentity: what the proxy knows about a verified client certificate, extracted once after
// the handshake. Plain data so the identity policy above can use it without touching OpenSSL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

}  // namespace mqtls::tls

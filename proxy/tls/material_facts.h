// Material facts: the expiry dates of the TLS material a listener's settings load, for the
// metrics that warn before a certificate expires or a CRL goes stale. Reads the files again
// (never the live SSL_CTX), so it can run on any thread while handshakes use the context.
#pragma once

#include <string>
#include <vector>

#include "config/model.h"

namespace mqtls::tls {

// One certificate: its role ("server": the leaf of a served certificate; "chain": a certificate
// sent after a leaf; "client_ca": a CA trusted for client certificates), its subject (RFC 2253,
// one line) and its notAfter as Unix seconds.
struct CertificateFact {
  std::string role;
  std::string subject;
  double not_after = 0;
};

// One CRL: its issuer (RFC 2253, one line) and nextUpdate as Unix seconds (0 when it has none).
struct CrlFact {
  std::string issuer;
  double next_update = 0;
};

// The material of one listener or of one of its SNI sites.
struct MaterialFacts {
  std::string scope;  // the listener's name, or "<listener>/<first site name>"
  std::vector<CertificateFact> certificates;
  std::vector<CrlFact> crls;
};

// The facts of `settings` (first the listener's own, then one entry per SNI site), each
// certificate or CRL once per scope. Files that cannot be read are skipped: the context build
// reports those. Client CAs and CRLs only when client_auth is not none.
std::vector<MaterialFacts> materialFacts(const std::string& listener,
                                         const config::TlsSettings& settings);

}  // namespace mqtls::tls

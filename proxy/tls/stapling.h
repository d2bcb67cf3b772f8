// OCSP stapling of the server certificate from a file (`tls.ocsp_staple`): a DER OCSP response,
// fetched by whatever renews it, checked when the context is built and sent to every client
// that asks for certificate status. A reload picks up a new file (it is one of contextFiles()).
#pragma once

#include <openssl/ssl.h>

#include <ctime>
#include <string>
#include <vector>

#include "util/openssl_ptr.h"
#include "util/result.h"

namespace mqtls::tls {

// A checked OCSP response for one server certificate.
struct Staple {
  std::vector<unsigned char> der;  // the response as it is sent
  int cert_status = 0;             // V_OCSP_CERTSTATUS_GOOD, _REVOKED or _UNKNOWN
  bool has_next_update = false;
  std::time_t next_update = 0;  // when has_next_update
  std::time_t this_update = 0;
  // The certificate it is about, when installed: with an RSA certificate beside an ECDSA one,
  // only clients served this one get the staple.
  X509Ptr leaf;
};

// Reads and checks the DER OCSP response in `path` for `leaf`, issued by `issuer`: response
// status successful, a basic response with exactly one single response whose certificate id
// matches leaf and issuer, signed by the issuer or by a responder certificate the issuer issued
// for OCSP signing (looked for in the response and in `chain`), thisUpdate not in the future.
// A response past its nextUpdate is returned (callers decide; see Staple::next_update). Fails
// with a message naming the file and what is wrong.
Result<Staple> readStaple(const std::string& path, X509* leaf, X509* issuer, STACK_OF(X509) * chain,
                          std::time_t now);

}  // namespace mqtls::tls

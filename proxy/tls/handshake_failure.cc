#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls/context.h"

namespace mqtls::tls {
namespace {

// The metric reason of a failed certificate verification, from its X509_V_ERR_* code.
std::string verifyReason(long verify) {
  switch (verify) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_CERT_UNTRUSTED:
    // Signed by a key that is not the named issuer's: the real issuer is not a trusted one.
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "unknown_ca";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "not_yet_valid";
    case X509_V_ERR_CERT_REVOKED:
      return "revoked";
    case X509_V_ERR_CRL_HAS_EXPIRED:
      return "crl_expired";
    default:
      return "bad_certificate";
  }
}

}  // namespace

HandshakeFailure classifyHandshakeFailure(SSL* ssl, const std::vector<unsigned long>& errors) {
  long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (verify == X509_V_ERR_CRL_HAS_EXPIRED) {
    // crl_next_update strict: the CRL to check against is stale, not the certificate bad.
    return {"crl_expired", "certificate verify failed: CRL has expired (past its nextUpdate)"};
  }
  if (verify != X509_V_OK) {
    return {verifyReason(verify),
            std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify)};
  }
  // The stream records SSL_get_error()'s small result code first, then the OpenSSL error queue
  // oldest first; the oldest queued error is the most specific one.
  unsigned long code = 0;
  for (unsigned long candidate : errors) {
    if (ERR_GET_LIB(candidate) != 0) {
      code = candidate;
      break;
    }
  }
  if (code == 0) {
    return {"eof", "client closed the connection during the handshake"};
  }
  const char* text = ERR_reason_error_string(code);
  std::string detail = text != nullptr ? text : "handshake error";
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) {
    return {"error", detail};
  }
  switch (ERR_GET_REASON(code)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return {"no_certificate", detail};
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
      return {"protocol_version", detail};
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
      return {"no_shared_cipher", detail};
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return {"bad_certificate", detail};  // verification failed without a verify result
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
      return {"not_tls", detail};
    default:
      return {"error", detail};
  }
}

}  // namespace mqtls::tls

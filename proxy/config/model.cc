#include "config/model.h"

namespace mqtls::config {

std::string_view identitySourceName(IdentitySource source) {
  switch (source) {
    case IdentitySource::Cn:
      return "cn";
    case IdentitySource::Dn:
      return "dn";
    case IdentitySource::SanUri:
      return "san_uri";
    case IdentitySource::SpiffeId:
      return "spiffe_id";
    case IdentitySource::SanDns:
      return "san_dns";
    case IdentitySource::SanEmail:
      return "san_email";
    case IdentitySource::FingerprintSha256:
      return "fingerprint_sha256";
    case IdentitySource::Serial:
      return "serial";
  }
  return "unknown";
}

}  // namespace mqtls::config

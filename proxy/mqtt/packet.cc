#include "mqtt/packet.h"

namespace mqtls::mqtt {

// Stable snake_case names, usable as metric labels and in logs.
std::string_view refusalName(Refusal refusal) {
  switch (refusal) {
    case Refusal::Malformed:
      return "malformed";
    case Refusal::ProtocolError:
      return "protocol_error";
    case Refusal::UnsupportedVersion:
      return "unsupported_version";
    case Refusal::IdentifierRejected:
      return "identifier_rejected";
    case Refusal::ServerUnavailable:
      return "server_unavailable";
    case Refusal::BadCredentials:
      return "bad_credentials";
    case Refusal::NotAuthorized:
      return "not_authorized";
    case Refusal::BadAuthMethod:
      return "bad_auth_method";
    case Refusal::PacketTooLarge:
      return "packet_too_large";
  }
  return "unknown";
}

}  // namespace mqtls::mqtt

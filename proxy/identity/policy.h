// Identity policy: decides, from the verified client certificate and the client's CONNECT,
// whether the connection may proceed and rewrites the CONNECT so the broker sees the certificate
// identity that the client cannot forge. Pure: no I/O, no OpenSSL, no logging.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/model.h"
#include "mqtt/connect.h"
#include "mqtt/packet.h"
#include "tls/peer_identity.h"

namespace mqtls::identity {

struct Decision {
  bool accepted = false;
  mqtt::Refusal refusal = mqtt::Refusal::NotAuthorized;  // meaningful when !accepted
  std::string reason;    // for the log: why refused, or how the CONNECT was rewritten; no secrets
  std::string identity;  // the certificate identity chosen (empty without a certificate)
  // MQTT 5: the client sent an empty client id and the proxy filled it in; the broker's CONNACK
  // must then carry this as Assigned Client Identifier.
  std::optional<std::string> assigned_client_id;
};

// All values of `source` present in the certificate, in certificate order (empty if none).
std::vector<std::string> identityValues(const tls::PeerIdentity& peer,
                                        config::IdentitySource source);

// Applies `policy` to `connect` in place. `peer` is null when the client presented no
// certificate (client_auth optional or none). On refusal `connect` may be partly modified and
// must not be forwarded. User properties named in policy.user_properties are always removed
// from the client's CONNECT and will properties, certificate or not.
Decision applyIdentityPolicy(const config::IdentityPolicy& policy, const tls::PeerIdentity* peer,
                             mqtt::ConnectPacket& connect);

}  // namespace mqtls::identity

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
#include "mqtt/publish.h"
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
// must not be forwarded. User properties named in policy.user_properties or
// policy.publish_properties are always removed from the client's CONNECT and will properties,
// certificate or not; the will then gets the certificate's publish_properties, as every PUBLISH
// does. Refusals: no usable identity or a user name other than the identity under
// username: require_match (BadCredentials); client id mismatch under client_id: require_match,
// a replaced or prefixed client id over 65,535 bytes, or over 23 bytes for MQTT 3.1
// (IdentifierRejected).
Decision applyIdentityPolicy(const config::IdentityPolicy& policy, const tls::PeerIdentity* peer,
                             mqtt::ConnectPacket& connect);

// What the proxy does to every MQTT 5 PUBLISH of this client: strip_names holds every name of
// policy.user_properties and policy.publish_properties (each once, in config order); add holds
// the certificate's values for policy.publish_properties, in config order (none when `peer` is
// null; values or names over 65,535 bytes are left out).
mqtt::PublishStamp publishStamp(const config::IdentityPolicy& policy,
                                const tls::PeerIdentity* peer);

}  // namespace mqtls::identity

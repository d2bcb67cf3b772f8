#include "identity/policy.h"

namespace mqtls::identity {
namespace {

std::vector<std::string> single(const std::string& value) {
  if (value.empty()) {
    return {};
  }
  return {value};
}

// Removes forged copies of the identity properties from the CONNECT and its will.
void stripForgeableProperties(const config::IdentityPolicy& policy, mqtt::ConnectPacket& connect) {
  if (connect.level != mqtt::ProtocolLevel::V5 || policy.user_properties.empty()) {
    return;
  }
  std::vector<std::string> names;
  for (const auto& [source, name] : policy.user_properties) {
    names.push_back(name);
  }
  connect.properties.removeUserProperties(names);
  if (connect.will) {
    connect.will->properties.removeUserProperties(names);
  }
}

void addIdentityProperties(const config::IdentityPolicy& policy, const tls::PeerIdentity& peer,
                           mqtt::ConnectPacket& connect) {
  if (connect.level != mqtt::ProtocolLevel::V5) {
    return;
  }
  for (const auto& [source, name] : policy.user_properties) {
    for (const auto& value : identityValues(peer, source)) {
      if (value.size() <= mqtt::kMaxFieldLength) {
        connect.properties.addUserProperty(name, value);
      }
    }
  }
}

Decision refuse(mqtt::Refusal refusal, std::string reason, std::string identity = {}) {
  Decision decision;
  decision.refusal = refusal;
  decision.reason = std::move(reason);
  decision.identity = std::move(identity);
  return decision;
}

// Applies the client identifier policy; returns a refusal reason or empty on success.
std::optional<Decision> applyClientIdPolicy(const config::IdentityPolicy& policy,
                                            const std::string& identity,
                                            mqtt::ConnectPacket& connect, Decision& accepted) {
  const bool was_empty = connect.client_id.empty();
  switch (policy.client_id) {
    case config::ClientIdPolicy::Keep:
      return std::nullopt;
    case config::ClientIdPolicy::RequireMatch:
      if (connect.client_id != identity) {
        return refuse(mqtt::Refusal::IdentifierRejected,
                      "client id does not match the certificate identity", identity);
      }
      return std::nullopt;
    case config::ClientIdPolicy::Replace:
      connect.client_id = identity;
      break;
    case config::ClientIdPolicy::Prefix:
      // An identity holding the separator would make "a:b" + "c" and "a" + "b:c" collide.
      if (identity.find(policy.client_id_separator) != std::string::npos) {
        return refuse(mqtt::Refusal::IdentifierRejected,
                      "certificate identity contains identity.client_id_separator; choose a "
                      "separator that identities never contain",
                      identity);
      }
      connect.client_id =
          was_empty ? identity : identity + policy.client_id_separator + connect.client_id;
      break;
  }
  if (connect.client_id.size() > mqtt::kMaxFieldLength) {
    return refuse(mqtt::Refusal::IdentifierRejected, "client id would exceed 65535 bytes",
                  identity);
  }
  if (was_empty && connect.level == mqtt::ProtocolLevel::V5) {
    accepted.assigned_client_id = connect.client_id;
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> identityValues(const tls::PeerIdentity& peer,
                                        config::IdentitySource source) {
  using config::IdentitySource;
  switch (source) {
    case IdentitySource::Cn:
      return single(peer.common_name);
    case IdentitySource::Dn:
      return single(peer.subject_dn);
    case IdentitySource::SanUri:
      return peer.san_uri;
    case IdentitySource::SpiffeId:
      return peer.spiffe_id ? single(*peer.spiffe_id) : std::vector<std::string>{};
    case IdentitySource::SanDns:
      return peer.san_dns;
    case IdentitySource::SanEmail:
      return peer.san_email;
    case IdentitySource::FingerprintSha256:
      return single(peer.fingerprint_sha256);
    case IdentitySource::Serial:
      return single(peer.serial_hex);
  }
  return {};
}

Decision applyIdentityPolicy(const config::IdentityPolicy& policy, const tls::PeerIdentity* peer,
                             mqtt::ConnectPacket& connect) {
  stripForgeableProperties(policy, connect);
  if (peer == nullptr) {
    if (policy.anonymous == config::AnonymousPolicy::Refuse) {
      return refuse(mqtt::Refusal::BadCredentials, "no client certificate");
    }
    Decision passthrough;
    passthrough.accepted = true;
    passthrough.reason = "no client certificate: CONNECT passed through";
    return passthrough;
  }
  std::string identity;
  for (auto source : policy.username_from) {
    auto values = identityValues(*peer, source);
    if (!values.empty()) {
      identity = values.front();
      break;
    }
  }
  if (identity.empty()) {
    return refuse(mqtt::Refusal::BadCredentials,
                  "certificate has none of the identity.username_from fields");
  }
  if (identity.size() > mqtt::kMaxFieldLength) {
    return refuse(mqtt::Refusal::BadCredentials, "certificate identity exceeds 65535 bytes");
  }
  Decision decision;
  decision.accepted = true;
  decision.identity = identity;
  if (auto refused = applyClientIdPolicy(policy, identity, connect, decision)) {
    return *refused;
  }
  const bool had_username = connect.username.has_value() && !connect.username->empty();
  if (policy.username == config::UsernamePolicy::Replace || !had_username) {
    connect.username = identity;
  }
  if (policy.password == config::PasswordPolicy::Strip) {
    connect.password.reset();
  }
  addIdentityProperties(policy, *peer, connect);
  decision.reason = "identity injected";
  return decision;
}

}  // namespace mqtls::identity

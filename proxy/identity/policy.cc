#include "identity/policy.h"

#include <algorithm>

namespace mqtls::identity {
namespace {

// MQTT 3.1 §3.1: the Client Identifier is 1 to 23 characters; brokers refuse longer ones.
constexpr std::size_t kMaxV31ClientIdLength = 23;
// Longest client-sent user name quoted in a refusal reason.
constexpr std::size_t kMaxQuotedLength = 64;

std::vector<std::string> single(const std::string& value) {
  if (value.empty()) {
    return {};
  }
  return {value};
}

// Appends the certificate's values of each (source, name) pair as user properties.
void addCertificateProperties(
    const std::vector<std::pair<config::IdentitySource, std::string>>& map,
    const tls::PeerIdentity& peer, mqtt::Properties& properties) {
  for (const auto& [source, name] : map) {
    for (const auto& value : identityValues(peer, source)) {
      if (value.size() <= mqtt::kMaxFieldLength) {
        properties.addUserProperty(name, value);
      }
    }
  }
}

// Removes forged copies of the identity properties from the CONNECT and its will, and stamps the
// will (a message published on the client's behalf) like every PUBLISH.
void rewriteProperties(const config::IdentityPolicy& policy, const tls::PeerIdentity* peer,
                       mqtt::ConnectPacket& connect) {
  if (connect.level != mqtt::ProtocolLevel::V5) {
    return;
  }
  const mqtt::PublishStamp stamp = publishStamp(policy, nullptr);
  connect.properties.removeUserProperties(stamp.strip_names);
  if (connect.will) {
    connect.will->properties.removeUserProperties(stamp.strip_names);
  }
  if (peer != nullptr) {
    addCertificateProperties(policy.user_properties, *peer, connect.properties);
    if (connect.will) {
      addCertificateProperties(policy.publish_properties, *peer, connect.will->properties);
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

// `text` quoted for a log reason, cut to kMaxQuotedLength bytes at a character boundary.
std::string quoted(std::string_view text) {
  if (text.size() > kMaxQuotedLength) {
    std::size_t cut = kMaxQuotedLength;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    return "'" + std::string(text.substr(0, cut)) + "...'";
  }
  return "'" + std::string(text) + "'";
}

// Checks the client id the policy produced; a refusal, or nullopt when it is acceptable.
std::optional<Decision> checkClientIdLength(const std::string& identity,
                                            const mqtt::ConnectPacket& connect) {
  if (connect.client_id.size() > mqtt::kMaxFieldLength) {
    return refuse(mqtt::Refusal::IdentifierRejected, "client id would exceed 65535 bytes",
                  identity);
  }
  if (connect.level == mqtt::ProtocolLevel::V31 &&
      connect.client_id.size() > kMaxV31ClientIdLength) {
    return refuse(mqtt::Refusal::IdentifierRejected,
                  "client id would be " + std::to_string(connect.client_id.size()) +
                      " bytes; MQTT 3.1 allows at most 23 (use MQTT 3.1.1 or 5, or "
                      "identity.client_id: keep)",
                  identity);
  }
  return std::nullopt;
}

// Applies the client identifier policy; a refusal, or nullopt on success.
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
  if (auto refused = checkClientIdLength(identity, connect)) {
    return refused;
  }
  if (was_empty && connect.level == mqtt::ProtocolLevel::V5) {
    accepted.assigned_client_id = connect.client_id;
  }
  return std::nullopt;
}

// Applies the user name policy; a refusal, or nullopt when the user name is settled.
std::optional<Decision> applyUsernamePolicy(const config::IdentityPolicy& policy,
                                            const std::string& identity,
                                            mqtt::ConnectPacket& connect) {
  const bool had_username = connect.username.has_value() && !connect.username->empty();
  switch (policy.username) {
    case config::UsernamePolicy::RequireMatch:
      if (had_username && *connect.username != identity) {
        return refuse(mqtt::Refusal::BadCredentials,
                      "user name " + quoted(*connect.username) +
                          " does not match the certificate identity " + quoted(identity),
                      identity);
      }
      [[fallthrough]];
    case config::UsernamePolicy::Replace:
      connect.username = identity;
      break;
    case config::UsernamePolicy::IfEmpty:
      if (!had_username) {
        connect.username = identity;
      }
      break;
  }
  return std::nullopt;
}

// The first identity value found along policy.username_from, or empty.
std::string chooseIdentity(const config::IdentityPolicy& policy, const tls::PeerIdentity& peer) {
  for (auto source : policy.username_from) {
    auto values = identityValues(peer, source);
    if (!values.empty()) {
      return values.front();
    }
  }
  return {};
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
  if (peer == nullptr) {
    rewriteProperties(policy, nullptr, connect);
    if (policy.anonymous == config::AnonymousPolicy::Refuse) {
      return refuse(mqtt::Refusal::BadCredentials, "no client certificate");
    }
    Decision passthrough;
    passthrough.accepted = true;
    passthrough.reason = "no client certificate: CONNECT passed through";
    return passthrough;
  }
  const std::string identity = chooseIdentity(policy, *peer);
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
  if (auto refused = applyUsernamePolicy(policy, identity, connect)) {
    return *refused;
  }
  if (policy.password == config::PasswordPolicy::Strip) {
    connect.password.reset();
  }
  rewriteProperties(policy, peer, connect);
  decision.reason = "identity injected";
  return decision;
}

mqtt::PublishStamp publishStamp(const config::IdentityPolicy& policy,
                                const tls::PeerIdentity* peer) {
  mqtt::PublishStamp stamp;
  for (const auto* map : {&policy.user_properties, &policy.publish_properties}) {
    for (const auto& [source, name] : *map) {
      if (std::find(stamp.strip_names.begin(), stamp.strip_names.end(), name) ==
          stamp.strip_names.end()) {
        stamp.strip_names.push_back(name);
      }
    }
  }
  if (peer == nullptr) {
    return stamp;
  }
  for (const auto& [source, name] : policy.publish_properties) {
    for (const auto& value : identityValues(*peer, source)) {
      if (name.size() <= mqtt::kMaxFieldLength && value.size() <= mqtt::kMaxFieldLength) {
        stamp.add.emplace_back(name, value);
      }
    }
  }
  return stamp;
}

}  // namespace mqtls::identity

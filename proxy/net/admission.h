// Admission: the decision whether a decoded CONNECT may go to the broker, and in what form.
//
// A decider gets the decoded CONNECT (not bytes) and the client's verified identity, and answers
// with a Verdict that carries the CONNECT to forward, so that a later decider (an HTTP auth hook)
// can still change it. It may answer at once, before decide() returns, or later from the event
// loop. The connection waits for a late answer in its Admitting state, under its own deadline;
// when the client goes away, the deadline passes or the process drains, the connection destroys
// the Pending handle, after which the decider must never call back.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <openssl/ssl.h>

#include "config/model.h"
#include "mqtt/connect.h"
#include "mqtt/packet.h"
#include "mqtt/publish.h"
#include "tls/peer_identity.h"

namespace mqtls::net {

struct AdmissionRequest {
  std::uint64_t connection_id = 0;
  mqtt::ConnectPacket connect;
  const tls::PeerIdentity* peer = nullptr;  // null without a client certificate
  std::string peer_error;  // a certificate was presented but gave no usable identity
  // The identity policy of the site (SNI) the client reached; null: the configuration's.
  const config::IdentityPolicy* policy = nullptr;
  // The client's TLS connection, valid during decide() only: a decider that answers later copies
  // what it needs (e.g. up-references the peer chain) before returning.
  SSL* ssl = nullptr;
};

struct Verdict {
  bool accepted = false;
  mqtt::Refusal refusal = mqtt::Refusal::NotAuthorized;  // when refused
  std::string close_reason;     // metric label and access-log reason when refused
  std::string reason;           // for the log; never secrets
  std::string identity;         // the certificate identity used (empty without a certificate)
  mqtt::ConnectPacket connect;  // the CONNECT to forward (rewritten) when accepted
  std::optional<std::string> assigned_client_id;  // MQTT 5: add to the broker's CONNACK
  mqtt::PublishStamp publish_stamp;  // MQTT 5: applied to every PUBLISH the client sends
};

using VerdictCallback = std::function<void(Verdict)>;

// Returned by a decider that will answer later. Destroying it cancels the decision: the callback
// is never called afterwards.
class PendingAdmission {
 public:
  virtual ~PendingAdmission() = default;
};

class AdmissionDecider {
 public:
  virtual ~AdmissionDecider() = default;
  // Either calls `done` before returning and returns null, or returns a handle and calls `done`
  // exactly once later from the event loop (unless the handle is destroyed first). Calling
  // `done` may destroy the handle, and the connection, before it returns: a decider calls it
  // last, from a copy it owns on the stack, and touches none of its own state afterwards.
  virtual std::unique_ptr<PendingAdmission> decide(AdmissionRequest request,
                                                   VerdictCallback done) = 0;
};

// The identity policy of the configuration, answered at once.
class PolicyDecider final : public AdmissionDecider {
 public:
  explicit PolicyDecider(const config::IdentityPolicy& policy) : policy_(policy) {}
  std::unique_ptr<PendingAdmission> decide(AdmissionRequest request, VerdictCallback done) override;

 private:
  // The request's site policy, else the configuration's.
  const config::IdentityPolicy& policyFor(const AdmissionRequest& request) const {
    return request.policy != nullptr ? *request.policy : policy_;
  }

  const config::IdentityPolicy& policy_;
};

}  // namespace mqtls::net

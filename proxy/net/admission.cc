#include "net/admission.h"

#include "identity/policy.h"

namespace mqtls::net {

std::unique_ptr<PendingAdmission> PolicyDecider::decide(AdmissionRequest request,
                                                        VerdictCallback done) {
  Verdict verdict;
  if (!request.peer_error.empty()) {
    verdict.refusal = mqtt::Refusal::BadCredentials;
    verdict.close_reason = "bad_certificate_identity";
    verdict.reason = request.peer_error;
    done(std::move(verdict));
    return nullptr;
  }
  auto decision = identity::applyIdentityPolicy(policyFor(request), request.peer, request.connect);
  verdict.identity = decision.identity;
  verdict.reason = decision.reason;
  if (!decision.accepted) {
    verdict.refusal = decision.refusal;
    verdict.close_reason = "refused_" + std::string(mqtt::refusalName(decision.refusal));
    done(std::move(verdict));
    return nullptr;
  }
  verdict.accepted = true;
  verdict.assigned_client_id = std::move(decision.assigned_client_id);
  if (request.connect.level == mqtt::ProtocolLevel::V5) {
    verdict.publish_stamp = identity::publishStamp(policyFor(request), request.peer);
  }
  verdict.connect = std::move(request.connect);
  done(std::move(verdict));
  return nullptr;
}

}  // namespace mqtls::net

// Connection, second part: from the finished handshake to the broker's connection. Reads the
// first packet (which must be a CONNECT within limits.max_connect_size), asks the admission
// decider, dials the broker, or refuses in the client's own protocol version.
#include <event2/buffer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>

#include "mqtt/connect.h"
#include "mqtt/connect_peek.h"
#include "mqtt/replies.h"
#include "net/connection.h"
#include "tls/crl.h"
#include "tls/verified_chains.h"

namespace mqtls::net {
namespace {

// The protocol level can be read once the fixed header, the name and the level byte are here.
constexpr std::size_t kLevelPeekBytes = 5 + 2 + 6 + 1;

std::span<const std::uint8_t> contiguous(evbuffer* buffer, std::size_t size) {
  size = std::min(size, evbuffer_get_length(buffer));
  auto* data = evbuffer_pullup(buffer, static_cast<ev_ssize_t>(size));
  return {data, data == nullptr ? 0 : size};
}

// The version label of mqtls_mqtt_connects_total.
std::string_view versionLabel(std::optional<mqtt::ProtocolLevel> level) {
  if (!level) {
    return "unknown";
  }
  switch (*level) {
    case mqtt::ProtocolLevel::V31:
      return "3.1";
    case mqtt::ProtocolLevel::V311:
      return "3.1.1";
    case mqtt::ProtocolLevel::V5:
      return "5.0";
  }
  return "unknown";
}

// The result label of a refused CONNECT: the MQTT 5 name of its reason (whatever version the
// client spoke), so one label value means one cause across versions.
std::string_view refusalLabel(mqtt::Refusal refusal) {
  switch (refusal) {
    case mqtt::Refusal::Malformed:
      return "malformed";
    case mqtt::Refusal::ProtocolError:
      return "protocol_error";
    case mqtt::Refusal::UnsupportedVersion:
      return "unsupported_protocol_version";
    case mqtt::Refusal::IdentifierRejected:
      return "client_identifier_not_valid";
    case mqtt::Refusal::ServerUnavailable:
      return "server_unavailable";
    case mqtt::Refusal::BadCredentials:
      return "bad_username_or_password";
    case mqtt::Refusal::NotAuthorized:
      return "not_authorized";
    case mqtt::Refusal::BadAuthMethod:
      return "bad_authentication_method";
    case mqtt::Refusal::PacketTooLarge:
      return "packet_too_large";
  }
  return "other";
}

// Which identity-policy rule refused a verdict (identity/policy.cc's refusals, told apart by
// their reasons), or empty when the identity policy did not refuse it (e.g. OCSP).
std::string_view identityRule(const Verdict& verdict) {
  if (verdict.close_reason == "bad_certificate_identity") {
    return "no_identity";
  }
  if (verdict.close_reason.rfind("refused_", 0) != 0) {
    return {};
  }
  const std::string& why = verdict.reason;
  auto has = [&why](std::string_view text) { return why.find(text) != std::string::npos; };
  if (has("no client certificate")) {
    return "anonymous";
  }
  if (has("none of the identity.username_from")) {
    return "no_identity";
  }
  if (has("does not match the certificate identity")) {
    return why.rfind("user name", 0) == 0 ? "username_mismatch" : "client_id_mismatch";
  }
  if (has("client_id_separator")) {
    return "client_id_separator";
  }
  if (has("exceed") || has("would be")) {
    return "too_long";
  }
  return "other";
}

}  // namespace

void Connection::onHandshakeDone() {
  auto facts = client_->sessionFacts();
  record_.tls_version = facts.version;
  record_.cipher = facts.cipher;
  record_.resumed = facts.resumed;
  record_.sni = client_->serverName();
  if (facts.resumed && !client_->certificateCurrent()) {
    // A session outliving its certificate: never resumed again, and refused now.
    client_->forgetSession();
    host_.metrics().handshakeFailed("expired");
    listener_metrics_.handshake(ops::HandshakeResult::Expired);
    host_.metrics().limitedLog().warn(
        "handshake_failed", "connection {}: TLS handshake from {} failed: expired: {}", id_,
        record_.peer, "resumed session of a certificate that is no longer valid");
    close("handshake_failed", "resumed session of a certificate that is no longer valid");
    return;
  }
  listener_metrics_.handshake(facts.resumed ? ops::HandshakeResult::Resumed
                                            : ops::HandshakeResult::Ok);
  listener_metrics_.handshakeDuration(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - accepted_at_).count());
  host_.metrics().tlsNegotiated(facts.version, facts.cipher);
  if (const auto looked = tls::verifyCacheResult(client_->ssl());
      looked != tls::VerifyCacheResult::None) {
    listener_metrics_.verifyCacheLookup(looked == tls::VerifyCacheResult::Hit);
  }
  if (tls::acceptedWithStaleCrl(client_->ssl())) {
    listener_metrics_.staleCrlAccepted();
    spdlog::debug(
        "connection {}: client certificate accepted with a CRL past its nextUpdate "
        "(crl_next_update lenient)",
        id_);
  }
  if (X509* leaf = client_->peerCertificate()) {
    // A stored TLS 1.2 session, and a TLS 1.3 one from its first renewal on, carries the identity
    // extracted when it was stored.
    peer_ = client_->keptPeerIdentity();
    if (!peer_) {
      auto identity = tls::extractPeerIdentity(leaf);
      if (identity) {
        peer_ = std::make_shared<const tls::PeerIdentity>(std::move(identity.value()));
      } else {
        peer_error_ = identity.error().message;
      }
    }
  }
  transition(State::AwaitingConnect);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - accepted_at_);
  auto remaining = host_.config().limits.connect_timeout - elapsed;
  armDeadline(std::max(remaining, std::chrono::milliseconds(1)));
  readFirstPacket();  // the CONNECT may have arrived with the handshake's last flight
}

// Reads the first packet. Refuses as soon as its first byte is not a CONNECT, as soon as its
// announced size exceeds the limit (in the client's version once the level byte is here), and
// otherwise decodes it whole and hands it to admission.
void Connection::readFirstPacket() {
  evbuffer* input = client_->input();
  const std::size_t buffered = evbuffer_get_length(input);
  if (buffered == 0) {
    return;
  }
  auto head = contiguous(input, kLevelPeekBytes);
  if (static_cast<mqtt::PacketType>(head[0] >> 4) != mqtt::PacketType::Connect) {
    refuse(mqtt::Refusal::ProtocolError, std::nullopt, "first_packet_not_connect",
           "first packet has type " + std::to_string(head[0] >> 4));
    return;
  }
  const std::size_t limit = host_.config().limits.max_connect_size;
  auto frame = mqtt::peekFrame(head.first(std::min<std::size_t>(head.size(), 5)), limit);
  if (frame.status == mqtt::FrameStatus::Error && frame.error == mqtt::FrameError::TooLarge) {
    auto level = mqtt::peekConnectLevel(head, frame.header_size);
    if (level.status == mqtt::LevelPeek::NeedMore && !client_finished_) {
      return;  // wait for the level byte (bounded by kLevelPeekBytes and the deadline)
    }
    refuse(mqtt::Refusal::PacketTooLarge,
           level.status == mqtt::LevelPeek::Known ? std::optional(level.level) : std::nullopt,
           "connect_too_large",
           "CONNECT of " + std::to_string(frame.totalSize()) + " bytes exceeds " +
               std::to_string(limit));
    return;
  }
  if (frame.status == mqtt::FrameStatus::Error) {
    refuse(mqtt::Refusal::Malformed, std::nullopt, "malformed",
           std::string(mqtt::frameErrorName(frame.error)));
    return;
  }
  if (frame.header_size == 0 || buffered < frame.totalSize()) {
    return;  // need more
  }
  const std::size_t size = frame.totalSize();
  auto decoded = mqtt::decodeConnect(contiguous(input, size));
  evbuffer_drain(input, size);
  record_.bytes_from_client += size;
  if (!decoded.ok()) {
    refuse(decoded.error.refusal, decoded.error.level, "malformed_connect", decoded.error.detail);
    return;
  }
  admit(std::move(*decoded.packet));
}

// Hands the decoded CONNECT to the decider. Later packets wait in the client's buffer (see
// holdClientInput), and the client's close or failure is still seen while the decision runs.
void Connection::admit(mqtt::ConnectPacket connect) {
  level_ = connect.level;
  client_max_packet_size_ = mqtt::maximumPacketSize(connect);
  record_.mqtt_level = static_cast<int>(connect.level);
  record_.client_id = connect.client_id;
  holdClientInput();
  transition(State::Admitting);
  armDeadline(host_.config().limits.admission_timeout);
  AdmissionRequest request{id_, std::move(connect), peer_.get(), peer_error_};
  request.ssl = client_->ssl();
  request.policy = tls::sitePolicy(request.ssl);
  deciding_ = true;
  pending_ = host_.admission().decide(std::move(request), [this](Verdict verdict) {
    verdict_ = std::make_unique<Verdict>(std::move(verdict));
    if (!deciding_) {
      pending_.reset();
      dispatch(Event::Admitted);
    }
  });
  deciding_ = false;
  if (verdict_) {
    pending_.reset();
    onVerdict();
  }
}

// Before streaming, what the client sends after its CONNECT waits in its input buffer; reading
// goes on (so a close or an error is noticed) until that buffer holds limits.max_connect_size.
void Connection::holdClientInput() {
  if (client_->input() != nullptr &&
      evbuffer_get_length(client_->input()) >= host_.config().limits.max_connect_size) {
    client_->pauseReading();
  }
}

void Connection::onVerdict() {
  Verdict verdict = std::move(*verdict_);
  verdict_.reset();
  peer_.reset();  // the decision is made: nothing reads the identity again
  std::string().swap(peer_error_);
  record_.identity = verdict.identity;
  if (!verdict.accepted) {
    if (auto rule = identityRule(verdict); !rule.empty()) {
      host_.metrics().identityRefused(rule);
    }
    refuse(verdict.refusal, level_, verdict.close_reason, verdict.reason);
    return;
  }
  auto rewritten = mqtt::encodeConnect(verdict.connect);
  if (!rewritten) {
    refuse(mqtt::Refusal::PacketTooLarge, level_, "connect_too_large",
           "rewritten CONNECT exceeds MQTT limits");
    return;
  }
  record_.client_id = verdict.connect.client_id;
  pending_connect_ = std::move(*rewritten);
  assigned_client_id_ = std::move(verdict.assigned_client_id);
  if (!verdict.publish_stamp.empty()) {
    step_ = std::make_unique<PublishStamper>(std::move(verdict.publish_stamp), 0);
  } else if (host_.config().limits.frame_client_packets) {
    step_ = std::make_unique<FramingOnlyStep>();
  }
  dial();
}

void Connection::dial() {
  upstream_ = std::make_unique<UpstreamStream>(*this, host_.base(), host_.dns());
  transition(State::Dialing);
  dial_started_ = std::chrono::steady_clock::now();
  armDeadline(host_.config().upstream.connect_timeout);
  upstream_->dial(host_.config().upstream);
}

void Connection::onUpstreamConnected() {
  evbuffer_add(upstream_->output(), pending_connect_.data(), pending_connect_.size());
  host_.metrics().connectForwarded();
  host_.metrics().mqttConnect(versionLabel(level_), "accepted");
  host_.metrics().upstreamConnected(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - dial_started_).count());
  pending_connect_.clear();
  pending_connect_.shrink_to_fit();
  event_del(deadline_.get());
  transition(State::Streaming);
  client_->resumeReading();
  forwardFromClient();
  if (client_finished_ && state_ == State::Streaming) {
    beginFlush(true, "client_closed");
  }
}

// Sends the CONNACK the client's version understands (or nothing, where the protocol says to
// close silently), then ends the client stream: flush, close_notify, linger. A refused client's
// TLS session is never resumed.
void Connection::refuse(mqtt::Refusal refusal, std::optional<mqtt::ProtocolLevel> level,
                        const std::string& close_reason, const std::string& detail) {
  host_.metrics().connectRefused(close_reason);
  if (close_reason != "first_packet_not_connect") {  // a CONNECT, even if malformed
    host_.metrics().mqttConnect(versionLabel(level), refusalLabel(refusal));
  }
  if (close_reason != "broker_unavailable") {  // logged once, as the broker's failure
    host_.metrics().limitedLog().warn("connect_refused", "connection {}: CONNECT refused ({}): {}",
                                      id_, close_reason, detail);
  }
  record_.close_reason = close_reason;
  record_.detail = detail;
  client_->forgetSession();
  if (level) {
    auto connack = mqtt::encodeRefusal(*level, refusal, {}, client_max_packet_size_);
    evbuffer_add(client_->output(), connack.data(), connack.size());
  }
  if (client_->closeKind() == CloseKind::Error) {
    close(close_reason, detail);  // the client is gone: nobody to tell
    return;
  }
  finishSurvivor(*client_, State::Refusing);
}

}  // namespace mqtls::net

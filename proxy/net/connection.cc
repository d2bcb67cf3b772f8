#include "net/connection.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <spdlog/spdlog.h>

#include <span>

#include "identity/policy.h"
#include "mqtt/connect.h"
#include "mqtt/framer.h"
#include "mqtt/replies.h"
#include "net/upstream.h"

namespace mqtls::net {
namespace {

std::string formatPeer(const sockaddr* addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "unix";
}

std::span<const std::uint8_t> contiguous(evbuffer* buffer, std::size_t size) {
  auto* data = evbuffer_pullup(buffer, static_cast<ev_ssize_t>(size));
  return {data, data == nullptr ? 0 : size};
}

// The protocol level of a CONNECT whose beginning is buffered, if enough of it is there. Used
// to answer an oversized CONNECT in the client's own version before its body arrives.
std::optional<mqtt::ProtocolLevel> peekConnectLevel(std::span<const std::uint8_t> bytes,
                                                    std::size_t header_size) {
  std::size_t at = header_size;
  if (bytes.size() < at + 2) {
    return std::nullopt;
  }
  std::size_t name_len = (std::size_t{bytes[at]} << 8) | bytes[at + 1];
  at += 2 + name_len;
  if (bytes.size() <= at) {
    return std::nullopt;
  }
  switch (bytes[at] & 0x7F) {
    case 3:
      return mqtt::ProtocolLevel::V31;
    case 4:
      return mqtt::ProtocolLevel::V311;
    case 5:
      return mqtt::ProtocolLevel::V5;
    default:
      return std::nullopt;
  }
}

}  // namespace

// peekFrame over an evbuffer: linearizes only the fixed header, then the whole packet once it has
// all arrived, so a large body is never copied before it is complete.
mqtt::FrameResult Connection::peekBuffered(evbuffer* input, std::size_t limit) {
  std::size_t buffered = evbuffer_get_length(input);
  auto frame = mqtt::peekFrame(contiguous(input, std::min<std::size_t>(buffered, 5)), limit);
  if (frame.status == mqtt::FrameStatus::NeedMore && frame.header_size != 0 &&
      buffered >= frame.totalSize()) {
    frame = mqtt::peekFrame(contiguous(input, frame.totalSize()), limit);
  }
  return frame;
}

Connection::Connection(ConnectionHost& host, std::uint64_t id, std::string listener_name,
                       tls::TlsContextPtr tls, int fd, const sockaddr* peer, int peer_len)
    : host_(host),
      id_(id),
      listener_name_(std::move(listener_name)),
      tls_(std::move(tls)),
      accepted_at_(std::chrono::steady_clock::now()) {
  record_.id = id;
  record_.listener = listener_name_;
  record_.peer = formatPeer(peer);
  SSL* ssl = tls_->newSsl().release();
  if (ssl != nullptr) {
    client_.reset(bufferevent_openssl_socket_new(host_.base(), fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  }
  if (!client_) {
    // On failure libevent has already freed the SSL (BEV_OPT_CLOSE_ON_FREE); the fd is ours.
    evutil_closesocket(fd);
  }
  deadline_.reset(evtimer_new(host_.base(), &Connection::onDeadline, this));
  host_.metrics().activeConnections(1);
}

Connection::~Connection() {
  host_.metrics().activeConnections(-1);
}

void Connection::start() {
  if (!client_ || !deadline_) {
    close("internal_error", "cannot allocate connection state");
    host_.release(this);
    return;
  }
  bufferevent_openssl_set_allow_dirty_shutdown(client_.get(), 1);
  bufferevent_setcb(client_.get(), &Connection::onClientRead, &Connection::onClientWrite,
                    &Connection::onClientEvent, this);
  // No read high watermark on the TLS side: libevent would stop mid-record and leave decrypted
  // bytes inside OpenSSL until the client sends more. Input before authentication is bounded by
  // readFirstPacket instead (the frame limit, then reading stops once the CONNECT is complete).
  bufferevent_enable(client_.get(), EV_READ | EV_WRITE);
  armDeadline(host_.config().limits.handshake_timeout);
}

void Connection::dispatch(Event event) {
  switch (state_) {
    case State::Handshaking:
      if (event == Event::HandshakeDone) {
        onHandshakeDone();
      } else if (event == Event::ClientClosed) {
        onHandshakeFailed();
      } else if (event == Event::DeadlineExpired) {
        host_.metrics().handshakeFailed("timeout");
        close("handshake_timeout");
      } else if (event == Event::Shutdown) {
        close("shutdown");
      }
      break;
    case State::AwaitingConnect:
      if (event == Event::ClientReadable) {
        readFirstPacket();
      } else if (event == Event::ClientClosed) {
        close("client_closed_before_connect");
      } else if (event == Event::DeadlineExpired) {
        host_.metrics().connectRefused("connect_timeout");
        close("connect_timeout");
      } else if (event == Event::Shutdown) {
        close("shutdown");
      }
      break;
    case State::Dialing:
      if (event == Event::UpstreamConnected) {
        onUpstreamConnected();
      } else if (event == Event::UpstreamClosed || event == Event::DeadlineExpired) {
        std::string detail = event == Event::DeadlineExpired ? "broker connect timed out"
                                                             : dialErrorText(upstream_.get());
        host_.metrics().upstreamFailed(event == Event::DeadlineExpired ? "timeout" : "error");
        upstream_.reset();
        refuse(mqtt::Refusal::ServerUnavailable, level_, "broker_unavailable", detail);
      } else if (event == Event::ClientClosed && !client_failed_) {
        client_finished_ = true;  // what it sent still goes to the broker once connected
      } else if (event == Event::ClientClosed) {
        close("client_closed_before_connack");
      } else if (event == Event::Shutdown) {
        close("shutdown");
      }
      break;
    case State::Streaming:
      if (event == Event::ClientReadable) {
        forward(client_.get(), upstream_.get(), ops::Direction::ClientToBroker);
      } else if (event == Event::UpstreamReadable) {
        if (!assigned_client_id_ || rewriteBrokerConnack()) {
          readMoreFromBroker();
          forward(upstream_.get(), client_.get(), ops::Direction::BrokerToClient);
        }
      } else if (event == Event::ClientDrained) {
        resumeReading(upstream_.get(), client_.get());
      } else if (event == Event::UpstreamDrained) {
        resumeReading(client_.get(), upstream_.get());
      } else if (event == Event::ClientClosed) {
        beginFlush(true, "client_closed", {});
      } else if (event == Event::UpstreamClosed) {
        beginFlush(false, "broker_closed", {});
      } else if (event == Event::Shutdown) {
        close("shutdown");
      }
      break;
    case State::Refusing:
    case State::Flushing:
      if (event == Event::ClientDrained && client_) {
        flushedSide(client_.get());
      } else if (event == Event::UpstreamDrained && upstream_) {
        flushedSide(upstream_.get());
      } else if (event == Event::ClientClosed || event == Event::UpstreamClosed ||
                 event == Event::DeadlineExpired || event == Event::Shutdown) {
        close(record_.close_reason, record_.detail);
      }
      break;
    case State::Lingering:
      if (event == Event::ClientReadable && client_) {
        evbuffer* input = bufferevent_get_input(client_.get());
        evbuffer_drain(input, evbuffer_get_length(input));
      } else if (event == Event::UpstreamReadable && upstream_) {
        evbuffer* input = bufferevent_get_input(upstream_.get());
        evbuffer_drain(input, evbuffer_get_length(input));
      } else if (event == Event::ClientClosed || event == Event::UpstreamClosed ||
                 event == Event::DeadlineExpired || event == Event::Shutdown) {
        close(record_.close_reason, record_.detail);
      }
      break;
    case State::Closed:
      break;
  }
  if (state_ == State::Closed) {
    host_.release(this);  // destroys this; nothing may follow
  }
}

void Connection::onHandshakeDone() {
  SSL* ssl = bufferevent_openssl_get_ssl(client_.get());
  auto facts = tls::describeSession(ssl);
  record_.tls_version = facts.version;
  record_.cipher = facts.cipher;
  record_.resumed = facts.resumed;
  host_.metrics().handshakeSucceeded(facts.version, facts.resumed);
  if (X509* leaf = SSL_get0_peer_certificate(ssl)) {
    auto identity = tls::extractPeerIdentity(leaf);
    if (identity) {
      peer_ = std::move(identity.value());
    } else {
      peer_error_ = identity.error().message;
    }
  }
  state_ = State::AwaitingConnect;
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - accepted_at_);
  auto remaining = host_.config().limits.connect_timeout - elapsed;
  armDeadline(std::max(remaining, std::chrono::milliseconds(1)));
  readFirstPacket();  // the CONNECT may have arrived with the handshake's last flight
}

void Connection::onHandshakeFailed() {
  SSL* ssl = bufferevent_openssl_get_ssl(client_.get());
  std::vector<unsigned long> errors;
  while (unsigned long code = bufferevent_get_openssl_error(client_.get())) {
    errors.push_back(code);
  }
  auto failure = tls::classifyHandshakeFailure(ssl, errors);
  host_.metrics().handshakeFailed(failure.reason);
  close("handshake_failed", failure.reason + ": " + failure.detail);
}

// Reads the first packet, which must be a CONNECT no larger than limits.max_connect_size.
void Connection::readFirstPacket() {
  evbuffer* input = bufferevent_get_input(client_.get());
  std::size_t buffered = evbuffer_get_length(input);
  if (buffered == 0) {
    return;
  }
  const std::size_t limit = host_.config().limits.max_connect_size;
  auto frame = peekBuffered(input, limit);
  if (frame.status == mqtt::FrameStatus::NeedMore) {
    return;
  }
  if (frame.status == mqtt::FrameStatus::Error) {
    if (frame.error == mqtt::FrameError::TooLarge && frame.type == mqtt::PacketType::Connect) {
      auto level = peekConnectLevel(contiguous(input, std::min<std::size_t>(buffered, 64)),
                                    frame.header_size);
      refuse(mqtt::Refusal::PacketTooLarge, level, "connect_too_large",
             "CONNECT of " + std::to_string(frame.totalSize()) + " bytes exceeds " +
                 std::to_string(limit));
      return;
    }
    refuse(mqtt::Refusal::Malformed, std::nullopt, "malformed",
           std::string(mqtt::frameErrorName(frame.error)));
    return;
  }
  if (frame.type != mqtt::PacketType::Connect) {
    refuse(mqtt::Refusal::ProtocolError, std::nullopt, "first_packet_not_connect",
           "first packet has type " + std::to_string(static_cast<int>(frame.type)));
    return;
  }
  auto decoded = mqtt::decodeConnect(contiguous(input, frame.totalSize()));
  evbuffer_drain(input, frame.totalSize());
  if (!decoded.ok()) {
    refuse(decoded.error.refusal, decoded.error.level, "malformed_connect", decoded.error.detail);
    return;
  }
  mqtt::ConnectPacket& connect = *decoded.packet;
  level_ = connect.level;
  if (auto max = connect.properties.find(mqtt::property::kMaximumPacketSize);
      max != nullptr && max->raw.size() == 4) {
    const auto* b = reinterpret_cast<const unsigned char*>(max->raw.data());
    client_max_packet_size_ = (std::uint32_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
  }
  if (!peer_error_.empty()) {
    refuse(mqtt::Refusal::BadCredentials, level_, "bad_certificate_identity", peer_error_);
    return;
  }
  auto decision =
      identity::applyIdentityPolicy(host_.config().identity, peer_ ? &*peer_ : nullptr, connect);
  record_.identity = decision.identity;
  record_.client_id = connect.client_id;
  record_.mqtt_level = static_cast<int>(connect.level);
  if (!decision.accepted) {
    refuse(decision.refusal, level_, "refused_" + std::string(mqtt::refusalName(decision.refusal)),
           decision.reason);
    return;
  }
  auto rewritten = mqtt::encodeConnect(connect);
  if (!rewritten) {
    refuse(mqtt::Refusal::PacketTooLarge, level_, "connect_too_large",
           "rewritten CONNECT exceeds MQTT limits");
    return;
  }
  assigned_client_id_ = decision.assigned_client_id;
  acceptConnect(std::move(*rewritten));
}

// The CONNECT passed: stop reading the client (later packets wait in its buffer) and dial.
void Connection::acceptConnect(std::vector<std::uint8_t> rewritten) {
  pending_connect_ = std::move(rewritten);
  bufferevent_disable(client_.get(), EV_READ);
  std::string error;
  upstream_ = dialUpstream(host_.base(), host_.dns(), host_.config().upstream, error);
  if (!upstream_) {
    host_.metrics().upstreamFailed("error");
    refuse(mqtt::Refusal::ServerUnavailable, level_, "broker_unavailable", error);
    return;
  }
  bufferevent_setcb(upstream_.get(), &Connection::onUpstreamRead, &Connection::onUpstreamWrite,
                    &Connection::onUpstreamEvent, this);
  bufferevent_enable(upstream_.get(), EV_READ | EV_WRITE);
  state_ = State::Dialing;
  armDeadline(host_.config().upstream.connect_timeout);
}

void Connection::onUpstreamConnected() {
  evutil_socket_t fd = bufferevent_getfd(upstream_.get());
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bufferevent_write(upstream_.get(), pending_connect_.data(), pending_connect_.size());
  record_.bytes_from_client += pending_connect_.size();
  host_.metrics().connectForwarded();
  pending_connect_.clear();
  pending_connect_.shrink_to_fit();
  event_del(deadline_.get());
  state_ = State::Streaming;
  const std::size_t limit = host_.config().limits.buffer_limit;
  bufferevent_setwatermark(upstream_.get(), EV_READ, 0, limit);
  bufferevent_enable(client_.get(), EV_READ);
  forward(client_.get(), upstream_.get(), ops::Direction::ClientToBroker);
  if (client_finished_) {
    beginFlush(true, "client_closed", {});
  }
}

// Sends the CONNACK the client's version understands (or nothing, where the protocol says to
// close silently), then closes once it is flushed.
void Connection::refuse(mqtt::Refusal refusal, std::optional<mqtt::ProtocolLevel> level,
                        const std::string& close_reason, const std::string& detail) {
  host_.metrics().connectRefused(close_reason);
  std::vector<std::uint8_t> connack;
  if (level) {
    connack = mqtt::encodeRefusal(*level, refusal, {}, client_max_packet_size_);
  }
  if (connack.empty()) {
    close(close_reason, detail);
    return;
  }
  record_.close_reason = close_reason;
  record_.detail = detail;
  state_ = State::Refusing;
  bufferevent_disable(client_.get(), EV_READ);
  bufferevent_setwatermark(client_.get(), EV_WRITE, 0, 0);
  bufferevent_write(client_.get(), connack.data(), connack.size());
  armDeadline(kFlushTimeout);
}

void Connection::armDeadline(std::chrono::milliseconds after) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(after.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((after.count() % 1000) * 1000);
  evtimer_add(deadline_.get(), &tv);
}

}  // namespace mqtls::net

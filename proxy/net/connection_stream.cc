// Connection, second half: moving bytes while streaming, flushing on close, and the libevent
// callbacks that turn into dispatch() events.
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <span>

#include "mqtt/framer.h"
#include "mqtt/replies.h"
#include "net/connection.h"

namespace mqtls::net {
namespace {

// A broker CONNACK larger than this is not a CONNACK we can trust.
constexpr std::size_t kMaxBrokerConnack = 64 * 1024;

}  // namespace

// Moves everything `from` has received into `to`'s output. If `to` is not keeping up, `from`
// stops reading until `to` drains to half the limit (see resumeReading), which bounds memory.
void Connection::forward(bufferevent* from, bufferevent* to, ops::Direction direction) {
  evbuffer* input = bufferevent_get_input(from);
  std::size_t moved = evbuffer_get_length(input);
  if (moved == 0) {
    return;
  }
  evbuffer* output = bufferevent_get_output(to);
  evbuffer_add_buffer(output, input);
  if (direction == ops::Direction::BrokerToClient) {
    // bufferevent_openssl writes one TLS record per buffer chunk: make the chunk large, so the
    // client gets full-size records rather than one record (and one syscall) per 4 KiB read.
    evbuffer_pullup(output,
                    static_cast<ev_ssize_t>(std::min(evbuffer_get_length(output), kCoalesceBytes)));
  }
  host_.metrics().bytesForwarded(direction, moved);
  if (direction == ops::Direction::ClientToBroker) {
    record_.bytes_from_client += moved;
  } else {
    record_.bytes_from_broker += moved;
  }
  const std::size_t limit = host_.config().limits.buffer_limit;
  if (evbuffer_get_length(output) >= limit) {
    bufferevent_disable(from, EV_READ);
    bufferevent_setwatermark(to, EV_WRITE, limit / 2, 0);
  }
}

// libevent reads at most 4 KiB from a socket per readiness event. Reads what else the broker
// has already sent (up to kCoalesceBytes) so it is forwarded in one piece. Stops at EAGAIN, EOF
// or an error; the bufferevent sees EOF and errors itself on its next read.
void Connection::readMoreFromBroker() {
  if (evbuffer_get_length(bufferevent_get_output(client_.get())) >=
      host_.config().limits.buffer_limit) {
    return;  // the client is behind: do not read ahead of the pause
  }
  evbuffer* input = bufferevent_get_input(upstream_.get());
  evutil_socket_t fd = bufferevent_getfd(upstream_.get());
  std::size_t buffered = evbuffer_get_length(input);
  while (buffered < kCoalesceBytes) {
    int n = evbuffer_read(input, fd, static_cast<int>(kCoalesceBytes - buffered));
    if (n <= 0) {
      break;
    }
    buffered += static_cast<std::size_t>(n);
  }
}

// `writer` drained below its low watermark: the side feeding it may read again.
void Connection::resumeReading(bufferevent* reader, bufferevent* writer) {
  if ((bufferevent_get_enabled(reader) & EV_READ) != 0) {
    return;
  }
  bufferevent_setwatermark(writer, EV_WRITE, 0, 0);
  bufferevent_enable(reader, EV_READ);
  // Data that arrived while paused is already buffered; move it now rather than wait for more.
  if (reader == client_.get()) {
    forward(client_.get(), upstream_.get(), ops::Direction::ClientToBroker);
  } else if (!assigned_client_id_) {
    forward(upstream_.get(), client_.get(), ops::Direction::BrokerToClient);
  }
}

// MQTT 5, client id filled in by the proxy: the broker's CONNACK must carry it as Assigned Client
// Identifier. AUTH packets before it (enhanced authentication) pass untouched, and a CONNACK
// that refuses or does not decode as MQTT 5 passes unchanged, so the client still gets the
// broker's answer. Returns true once the CONNACK has been passed on (streaming may continue),
// false while it is incomplete or when the connection was closed.
bool Connection::rewriteBrokerConnack() {
  evbuffer* input = bufferevent_get_input(upstream_.get());
  evbuffer* output = bufferevent_get_output(client_.get());
  for (;;) {
    auto frame = peekBuffered(input, kMaxBrokerConnack);
    if (frame.status == mqtt::FrameStatus::NeedMore) {
      return false;
    }
    const bool connack =
        frame.status == mqtt::FrameStatus::Frame && frame.type == mqtt::PacketType::Connack;
    const bool auth =
        frame.status == mqtt::FrameStatus::Frame && frame.type == mqtt::PacketType::Auth;
    if (!connack && !auth) {
      close("broker_protocol_error", "broker's first packet is not a CONNACK");
      return false;
    }
    record_.bytes_from_broker += frame.totalSize();
    host_.metrics().bytesForwarded(ops::Direction::BrokerToClient, frame.totalSize());
    std::vector<std::uint8_t> rewritten;
    if (connack) {
      auto* bytes = evbuffer_pullup(input, static_cast<ev_ssize_t>(frame.totalSize()));
      auto decoded = mqtt::decodeConnack(mqtt::ProtocolLevel::V5, {bytes, frame.totalSize()});
      if (decoded && decoded->reason_code < 0x80 &&
          decoded->properties.find(mqtt::property::kAssignedClientIdentifier) == nullptr) {
        decoded->properties.addString(mqtt::property::kAssignedClientIdentifier,
                                      *assigned_client_id_);
        rewritten = mqtt::encodeConnack(mqtt::ProtocolLevel::V5, *decoded);
      }
    }
    if (rewritten.empty()) {
      evbuffer_remove_buffer(input, output, frame.totalSize());  // unchanged
    } else {
      evbuffer_drain(input, frame.totalSize());
      evbuffer_add(output, rewritten.data(), rewritten.size());
    }
    if (connack) {
      assigned_client_id_.reset();
      return true;
    }
  }
}

// One side closed. What it sent is already moved to the other side; flush that, then close.
void Connection::beginFlush(bool client_side_closed, const std::string& reason,
                            const std::string& detail) {
  if (client_side_closed) {
    forward(client_.get(), upstream_.get(), ops::Direction::ClientToBroker);
    releaseClient();
  } else {
    if (!assigned_client_id_) {
      forward(upstream_.get(), client_.get(), ops::Direction::BrokerToClient);
    }
    upstream_.reset();
  }
  bufferevent* survivor = client_side_closed ? upstream_.get() : client_.get();
  record_.close_reason = reason;
  record_.detail = detail;
  if (evbuffer_get_length(bufferevent_get_output(survivor)) == 0) {
    startLinger(survivor);
    return;
  }
  state_ = State::Flushing;
  bufferevent_disable(survivor, EV_READ);
  bufferevent_setwatermark(survivor, EV_WRITE, 0, 0);
  armDeadline(kFlushTimeout);
}

void Connection::flushedSide(bufferevent* writer) {
  if (evbuffer_get_length(bufferevent_get_output(writer)) == 0) {
    startLinger(writer);
  }
}

// Everything owed to `survivor` has reached the kernel. Closing now with unread bytes in the
// socket would send RST and could destroy that data in flight, so end the write side (TLS
// close_notify first on the client), then discard what the peer still sends until it closes or
// kLingerTimeout passes.
void Connection::startLinger(bufferevent* survivor) {
  if (survivor == client_.get()) {
    sendCloseNotify();
  }
  ::shutdown(bufferevent_getfd(survivor), SHUT_WR);
  state_ = State::Lingering;
  bufferevent_disable(survivor, EV_WRITE);
  bufferevent_enable(survivor, EV_READ);
  evbuffer* input = bufferevent_get_input(survivor);
  evbuffer_drain(input, evbuffer_get_length(input));
  armDeadline(kLingerTimeout);
}

// Releases both sides and the timer, counts and logs the connection. Idempotent.
void Connection::close(const std::string& reason, const std::string& detail) {
  if (state_ == State::Closed) {
    return;
  }
  state_ = State::Closed;
  upstream_.reset();
  releaseClient();
  if (deadline_) {
    event_del(deadline_.get());
  }
  record_.close_reason = reason;
  record_.detail = detail;
  record_.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - accepted_at_)
          .count();
  host_.metrics().connectionClosed(reason);
  ops::logAccess(record_);
}

// Frees the client side. After a clean TLS session it first sends close_notify and marks the
// session shut down: libevent frees the SSL without SSL_shutdown, and OpenSSL would otherwise
// drop the session from the cache, so the client could never resume it.
void Connection::releaseClient() {
  if (!client_) {
    return;
  }
  if (SSL* ssl = sendCloseNotify()) {
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  client_.reset();
}

// Sends close_notify once, on a client TLS session that finished its handshake without error.
// Returns that session, or nullptr when it is not clean (and must not be resumed).
SSL* Connection::sendCloseNotify() {
  SSL* ssl = bufferevent_openssl_get_ssl(client_.get());
  if (ssl == nullptr || client_failed_ || !SSL_is_init_finished(ssl)) {
    return nullptr;
  }
  if ((SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) == 0) {
    SSL_shutdown(ssl);
    ERR_clear_error();
  }
  return ssl;
}

void Connection::onClientRead(bufferevent*, void* self) {
  static_cast<Connection*>(self)->dispatch(Event::ClientReadable);
}

void Connection::onClientWrite(bufferevent*, void* self) {
  static_cast<Connection*>(self)->dispatch(Event::ClientDrained);
}

void Connection::onClientEvent(bufferevent*, short what, void* self) {
  auto* connection = static_cast<Connection*>(self);
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    connection->dispatch(Event::HandshakeDone);
  } else if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) != 0) {
    if (connection->state_ != State::Lingering) {  // a reset answering our close is normal
      connection->client_failed_ = (what & BEV_EVENT_ERROR) != 0;
    }
    connection->dispatch(Event::ClientClosed);
  }
}

void Connection::onUpstreamRead(bufferevent*, void* self) {
  static_cast<Connection*>(self)->dispatch(Event::UpstreamReadable);
}

void Connection::onUpstreamWrite(bufferevent*, void* self) {
  static_cast<Connection*>(self)->dispatch(Event::UpstreamDrained);
}

void Connection::onUpstreamEvent(bufferevent*, short what, void* self) {
  auto* connection = static_cast<Connection*>(self);
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    connection->dispatch(Event::UpstreamConnected);
  } else if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) != 0) {
    connection->dispatch(Event::UpstreamClosed);
  }
}

void Connection::onDeadline(evutil_socket_t, short, void* self) {
  static_cast<Connection*>(self)->dispatch(Event::DeadlineExpired);
}

}  // namespace mqtls::net

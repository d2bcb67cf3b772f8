// Connection, third part: moving bytes while streaming (byte for byte, or framed through a
// PacketStep), back-pressure, and the close sequence (flush, shut the write side, linger).
#include <event2/buffer.h>

#include <algorithm>
#include <span>

#include <spdlog/spdlog.h>

#include "mqtt/replies.h"
#include "net/connection.h"

namespace mqtls::net {
namespace {

std::span<const std::uint8_t> contiguous(evbuffer* buffer, std::size_t size) {
  auto* data = evbuffer_pullup(buffer, static_cast<ev_ssize_t>(size));
  return {data, data == nullptr ? 0 : size};
}

// peekFrame over an evbuffer: linearizes only the fixed header, then the whole packet once it has
// all arrived, so a large body is never copied before it is complete.
mqtt::FrameResult peekBuffered(evbuffer* input, std::size_t limit) {
  std::size_t buffered = evbuffer_get_length(input);
  auto frame = mqtt::peekFrame(contiguous(input, std::min<std::size_t>(buffered, 5)), limit);
  if (frame.status == mqtt::FrameStatus::NeedMore && frame.header_size != 0 &&
      buffered >= frame.totalSize()) {
    frame = mqtt::peekFrame(contiguous(input, frame.totalSize()), limit);
  }
  return frame;
}

}  // namespace

// Client to broker. Byte for byte unless a PacketStep is set, then packet by packet.
void Connection::forwardFromClient() {
  if (step_) {
    forwardFramed(host_.config().limits.buffer_limit);
    return;
  }
  const std::size_t moved = evbuffer_get_length(client_->input());
  if (moved == 0) {
    return;
  }
  evbuffer_add_buffer(upstream_->output(), client_->input());
  moveToBroker(moved);
  applyBackPressure(*client_, *upstream_);
}

void Connection::moveToBroker(std::size_t bytes) {
  host_.metrics().bytesForwarded(ops::Direction::ClientToBroker, bytes);
  record_.bytes_from_client += bytes;
}

// Cuts the client's input into whole packets and passes each the step wants through step_;
// the others stream by length without a copy, whatever their size. A packet the step wants is
// held whole, up to limits.max_rewritten_packet (larger: DISCONNECT 0x95). Stops at an
// incomplete packet or once the broker's output holds `limit` bytes. Returns false when a packet
// was refused (the connection is ending).
bool Connection::forwardFramed(std::size_t limit) {
  evbuffer* input = client_->input();
  evbuffer* output = upstream_->output();
  const std::size_t held_limit = host_.config().limits.max_rewritten_packet;
  std::size_t packets = 0;  // counted once per call, not per packet
  // Counts what moved before a return; the close paths return false.
  auto refused = [&](std::uint8_t reason_code, const std::string& detail) {
    host_.metrics().packetsForwarded(ops::Direction::ClientToBroker, packets);
    endForPacket(reason_code, detail);
    return false;
  };
  while (evbuffer_get_length(output) < limit) {
    if (passthrough_left_ > 0) {
      const std::size_t n = std::min(passthrough_left_, evbuffer_get_length(input));
      if (n == 0) {
        break;
      }
      evbuffer_remove_buffer(input, output, n);
      passthrough_left_ -= n;
      moveToBroker(n);
      continue;
    }
    auto frame = peekBuffered(input, mqtt::kMaxRemainingLength + 5);
    if (frame.status == mqtt::FrameStatus::Error) {
      return refused(0x81, "malformed packet: " + std::string(mqtt::frameErrorName(frame.error)));
    }
    if (frame.header_size == 0) {
      break;  // not even a fixed header yet
    }
    const std::size_t size = frame.totalSize();
    if (!step_->wants(frame.type)) {
      passthrough_left_ = size;
      ++packets;
      continue;
    }
    if (size > held_limit) {
      return refused(0x95, "packet of " + std::to_string(size) + " bytes exceeds " +
                               std::to_string(held_limit) + " (limits.max_rewritten_packet)");
    }
    if (frame.status == mqtt::FrameStatus::NeedMore) {
      break;
    }
    StepResult step = step_->onPacket(frame, contiguous(input, size));
    switch (step.action) {
      case StepAction::Forward:
        evbuffer_remove_buffer(input, output, size);
        break;
      case StepAction::Replace:
        evbuffer_drain(input, size);
        evbuffer_add(output, step.bytes.data(), step.bytes.size());
        break;
      case StepAction::Drop:
        evbuffer_drain(input, size);
        break;
      case StepAction::Close:
        return refused(step.reason_code, step.detail);
    }
    ++packets;
    moveToBroker(size);
  }
  host_.metrics().packetsForwarded(ops::Direction::ClientToBroker, packets);
  applyBackPressure(*client_, *upstream_);
  return true;
}

// A client packet the proxy will not forward: MQTT 5 clients get a DISCONNECT with the reason
// code; what was forwarded before it still reaches the broker, which is then closed.
void Connection::endForPacket(std::uint8_t reason_code, const std::string& detail) {
  if (level_ == mqtt::ProtocolLevel::V5) {
    auto disconnect = mqtt::encodeDisconnect(reason_code);
    evbuffer_add(client_->output(), disconnect.data(), disconnect.size());
  }
  host_.metrics().limitedLog().warn("packet_refused",
                                    "connection {}: packet refused (reason 0x{:02x}): {}", id_,
                                    reason_code, detail);
  record_.close_reason = "packet_refused";
  record_.detail = detail;
  client_->forgetSession();
  upstream_->finish();
  finishSurvivor(*client_, State::Flushing);
}

void Connection::closeByAdmin() {
  if (state_ == State::Closed) {
    return;
  }
  if (state_ != State::Streaming) {
    close("admin", "closed by an administrator");
    return;
  }
  if (level_ == mqtt::ProtocolLevel::V5) {
    auto disconnect = mqtt::encodeDisconnect(0x98);  // Administrative action
    evbuffer_add(client_->output(), disconnect.data(), disconnect.size());
  }
  record_.close_reason = "admin";
  record_.detail = "closed by an administrator";
  upstream_->finish();
  finishSurvivor(*client_, State::Flushing);
}

// Broker to client: the CONNACK first (rewritten when the proxy assigned the client id), then
// everything byte for byte (the client stream cuts it into full TLS records).
void Connection::forwardFromBroker() {
  if (assigned_client_id_ && !rewriteBrokerConnack()) {
    return;
  }
  const std::size_t moved = evbuffer_get_length(upstream_->input());
  if (moved == 0) {
    return;
  }
  evbuffer_add_buffer(client_->output(), upstream_->input());
  host_.metrics().bytesForwarded(ops::Direction::BrokerToClient, moved);
  record_.bytes_from_broker += moved;
  applyBackPressure(*upstream_, *client_);
}

// MQTT 5, client id filled in by the proxy: the broker's CONNACK must carry it as Assigned Client
// Identifier, within the client's Maximum Packet Size. AUTH packets before it pass untouched; a
// CONNACK that refuses or does not decode passes unchanged. Returns true once the CONNACK has
// been passed on, false while it is incomplete or when the connection was closed.
bool Connection::rewriteBrokerConnack() {
  evbuffer* input = upstream_->input();
  evbuffer* output = client_->output();
  for (;;) {
    auto frame = peekBuffered(input, kMaxBrokerConnack);
    if (frame.status == mqtt::FrameStatus::NeedMore) {
      return false;
    }
    const bool ok = frame.status == mqtt::FrameStatus::Frame;
    const bool connack = ok && frame.type == mqtt::PacketType::Connack;
    if (!connack && !(ok && frame.type == mqtt::PacketType::Auth)) {
      close("broker_protocol_error", "broker's first packet is not a CONNACK");
      return false;
    }
    record_.bytes_from_broker += frame.totalSize();
    host_.metrics().bytesForwarded(ops::Direction::BrokerToClient, frame.totalSize());
    host_.metrics().packetsForwarded(ops::Direction::BrokerToClient, 1);
    std::vector<std::uint8_t> rewritten;
    if (connack) {
      rewritten = mqtt::addAssignedClientId(contiguous(input, frame.totalSize()),
                                            *assigned_client_id_, client_max_packet_size_);
    }
    if (rewritten.empty()) {
      evbuffer_remove_buffer(input, output, frame.totalSize());
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

// `to` is not keeping up: `from` stops reading until `to` drains to half the limit.
void Connection::applyBackPressure(Stream& from, Stream& to) {
  const std::size_t limit = host_.config().limits.buffer_limit;
  if (to.outputSize() >= limit) {
    from.pauseReading();
    to.watchDrain(limit / 2);
  }
}

// `writer` drained below its watermark: `reader` may read again; what it holds moves now.
void Connection::resumeAfterDrain(Stream& reader, Stream& writer) {
  if (!reader.readingPaused()) {
    return;
  }
  writer.unwatchDrain();
  reader.resumeReading();
  if (&reader == client_.get()) {
    forwardFromClient();
  } else {
    forwardFromBroker();
  }
}

// One side closed. What it sent moves to the other side, which then flushes and finishes.
void Connection::beginFlush(bool client_side_closed, const std::string& reason) {
  record_.close_reason = reason;
  if (client_side_closed) {
    record_.detail = client_->closeDetail();
    if (step_ == nullptr) {
      forwardFromClient();
    } else if (!forwardFramed(SIZE_MAX)) {
      return;  // a packet was refused: the connection is closing that way
    }
    client_.reset();
    finishSurvivor(*upstream_, State::Flushing);
    return;
  }
  record_.detail = upstream_->closeDetail();
  if (!assigned_client_id_ || rewriteBrokerConnack()) {
    forwardFromBroker();
  }
  if (state_ != State::Closed) {
    upstream_.reset();
    finishSurvivor(*client_, State::Flushing);
  }
}

// Ends `survivor` gracefully; the connection waits in `state` (Refusing or Flushing) for its
// Finished event, giving up only when its output stops draining for kFlushIdleTimeout.
void Connection::finishSurvivor(Stream& survivor, State state) {
  transition(state);
  flush_mark_ = survivor.outputSize();
  armDeadline(kFlushIdleTimeout);
  survivor.finish();  // may report Finished on a later loop turn, never from inside
}

// The flush deadline is an idle deadline: a slow but steady reader keeps it from firing.
void Connection::onFlushDeadline() {
  Stream* side = survivor();
  const std::size_t now = side != nullptr ? side->outputSize() : 0;
  if (side != nullptr && now < flush_mark_) {
    flush_mark_ = now;
    armDeadline(kFlushIdleTimeout);
    return;
  }
  close(record_.close_reason, "flush stalled; " + record_.detail);
}

void Connection::startLinger() {
  transition(State::Lingering);
  Stream* side = survivor();
  if (side == nullptr || side->closeKind() != CloseKind::None) {
    close(record_.close_reason, record_.detail);  // the peer has already closed
    return;
  }
  armDeadline(kLingerTimeout);
}

Stream* Connection::survivor() const {
  if (client_ && upstream_) {
    return client_.get();  // refusing or closing a framed stream: the client is the one told
  }
  return client_ ? static_cast<Stream*>(client_.get()) : upstream_.get();
}

// Releases both sides and the timer, counts and logs the connection. Idempotent.
void Connection::close(std::string reason, std::string detail) {
  if (state_ == State::Closed) {
    return;
  }
  transition(State::Closed);
  pending_.reset();
  upstream_.reset();
  client_.reset();
  if (deadline_) {
    event_del(deadline_.get());
  }
  record_.close_reason = std::move(reason);
  record_.detail = std::move(detail);
  record_.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - accepted_at_)
          .count();
  host_.metrics().connectionClosed(record_.close_reason);
  ops::logAccess(record_);
}

}  // namespace mqtls::net

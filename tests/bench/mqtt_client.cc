#include "mqtt_client.h"

#include <sys/epoll.h>

#include <cstring>

namespace mqtls::bench {
namespace {

constexpr std::size_t kInputCapacity = 256 * 1024;  // far above the largest packet we expect
constexpr std::size_t kCompactAbove = 64 * 1024;

}  // namespace

MqttClient::~MqttClient() {
  close(false);
}

void MqttClient::open(const Endpoint& endpoint, SSL_CTX* ctx, SSL_SESSION* session,
                      const std::string& client_id) {
  close(false);
  ++generation_;
  opened_at_ = Clock::now();
  phase_ = Phase::Handshaking;
  in_.resize(kInputCapacity);
  in_pos_ = in_end_ = 0;
  out_.clear();
  out_pos_ = 0;
  write_blocked_ = read_wants_write_ = false;
  connect_packet_ = encodeConnect(client_id, 60);
  transport_ = std::make_unique<Transport>(endpoint, ctx, session);
  if (transport_->fd() < 0) {
    std::string error = transport_->error();
    transport_.reset();
    throw OpenError(error);
  }
  interest_ = EPOLLIN | EPOLLOUT;
  loop_.add(transport_->fd(), this, interest_);
}

void MqttClient::close(bool graceful) {
  if (!transport_) {
    return;
  }
  if (graceful && phase_ == Phase::Open) {
    auto disconnect = encodeDisconnect();
    out_.insert(out_.end(), disconnect.begin(), disconnect.end());
    transport_->write(out_.data() + out_pos_, out_.size() - out_pos_);  // best effort
  }
  if (graceful) {
    transport_->shutdown();
  }
  loop_.remove(transport_->fd());
  transport_.reset();
  ++generation_;
}

void MqttClient::fail(const std::string& what, bool fatal) {
  close(false);
  onFailure(what, fatal);
}

void MqttClient::onEvents(std::uint32_t) {
  if (!transport_) {
    return;
  }
  const auto generation = generation_;
  if (phase_ == Phase::Handshaking && !advanceHandshake()) {
    return;
  }
  if (pendingOutput() > 0) {
    bool was_blocked = write_blocked_;
    flush();
    if (generation != generation_) {
      return;
    }
    if (was_blocked && pendingOutput() == 0 && phase_ == Phase::Open) {
      onDrained();
      if (generation != generation_) {
        return;
      }
    }
  }
  if (readAll()) {
    updateInterest();
  }
}

// True once the handshake is done (CONNECT queued); false while it continues or after failure.
bool MqttClient::advanceHandshake() {
  Io io = transport_->handshake();
  if (io == Io::Ok) {
    phase_ = Phase::AwaitingConnack;
    out_.insert(out_.end(), connect_packet_.begin(), connect_packet_.end());
    return true;
  }
  if (io == Io::WantRead || io == Io::WantWrite) {
    std::uint32_t want = io == Io::WantRead ? EPOLLIN : EPOLLOUT;
    if (want != interest_) {
      loop_.modify(transport_->fd(), this, want);
      interest_ = want;
    }
    return false;
  }
  fail(transport_->error().empty() ? "handshake: connection closed" : transport_->error(), false);
  return false;
}

void MqttClient::flush() {
  while (out_pos_ < out_.size()) {
    IoResult result = transport_->write(out_.data() + out_pos_, out_.size() - out_pos_);
    if (result.status == Io::Ok) {
      out_pos_ += result.bytes;
      continue;
    }
    if (result.status == Io::WantWrite || result.status == Io::WantRead) {
      write_blocked_ = true;
      updateInterest();
      return;
    }
    fail(transport_->error().empty() ? "write: connection closed" : transport_->error(), false);
    return;
  }
  write_blocked_ = false;
  out_.clear();
  out_pos_ = 0;
  updateInterest();
}

// Reads until the socket is drained; false if the connection ended or was replaced meanwhile.
bool MqttClient::readAll() {
  const auto generation = generation_;
  for (;;) {
    if (in_pos_ == in_end_) {
      in_pos_ = in_end_ = 0;
    } else if (in_pos_ > kCompactAbove) {
      std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
      in_end_ -= in_pos_;
      in_pos_ = 0;
    }
    if (in_end_ == in_.size()) {
      fail("packet larger than the input buffer", true);
      return false;
    }
    IoResult result = transport_->read(in_.data() + in_end_, in_.size() - in_end_);
    read_wants_write_ = result.status == Io::WantWrite;
    if (result.status == Io::WantRead || result.status == Io::WantWrite) {
      return true;
    }
    if (result.status != Io::Ok) {
      bool early = phase_ != Phase::Open;
      fail(early ? "connection closed before CONNACK: " + transport_->error()
                 : "connection closed by the server: " + transport_->error(),
           false);
      return false;
    }
    in_end_ += result.bytes;
    if (!parseInput() || generation != generation_) {
      return false;
    }
  }
}

bool MqttClient::parseInput() {
  const auto generation = generation_;
  while (in_pos_ < in_end_) {
    Frame frame;
    auto status = parseFrame({in_.data() + in_pos_, in_end_ - in_pos_}, frame);
    if (status == ParseStatus::NeedMore) {
      return true;
    }
    if (status == ParseStatus::Malformed) {
      fail("malformed packet from the server", true);
      return false;
    }
    in_pos_ += frame.total_size;
    if (phase_ == Phase::AwaitingConnack) {
      if (frame.type != PacketType::Connack || frame.body.size() != 2) {
        fail("first packet from the server is not a CONNACK", true);
        return false;
      }
      if (frame.body[1] != 0) {
        fail("CONNACK refused with return code " + std::to_string(frame.body[1]), true);
        return false;
      }
      phase_ = Phase::Open;
      onConnected();
    } else {
      onPacket(frame);
    }
    if (generation != generation_) {
      return false;
    }
  }
  return true;
}

void MqttClient::updateInterest() {
  if (!transport_ || phase_ == Phase::Handshaking) {
    return;
  }
  std::uint32_t want = EPOLLIN;
  if (write_blocked_ || read_wants_write_) {
    want |= EPOLLOUT;
  }
  if (want != interest_) {
    loop_.modify(transport_->fd(), this, want);
    interest_ = want;
  }
}

}  // namespace mqtls::bench

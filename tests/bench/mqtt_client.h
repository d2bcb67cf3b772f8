// An MQTT 3.1.1 client connection driven by the event loop: connects (TCP, then TLS when the
// target uses it), sends CONNECT, checks the CONNACK, then hands packets to the subclass.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "event_loop.h"
#include "mqtt_wire.h"
#include "transport.h"

namespace mqtls::bench {

// The socket could not even be created or the connect() was refused outright.
class OpenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MqttClient : public EventHandler {
 public:
  explicit MqttClient(EventLoop& loop) : loop_(loop) {}
  ~MqttClient() override;

  // Opens a new connection (closing any previous one) and sends CONNECT once it is up. Throws
  // OpenError if the connection cannot be started.
  void open(const Endpoint& endpoint, SSL_CTX* ctx, SSL_SESSION* session,
            const std::string& client_id);
  // Closes at once; with `graceful`, sends DISCONNECT and close_notify first (best effort).
  void close(bool graceful);
  bool isOpen() const { return transport_ != nullptr; }
  Transport* transport() const { return transport_.get(); }
  Clock::time_point openedAt() const { return opened_at_; }

  void onEvents(std::uint32_t events) final;

 protected:
  // CONNACK 0 arrived: the connection is usable.
  virtual void onConnected() = 0;
  // A packet after the CONNACK.
  virtual void onPacket(const Frame& frame) = 0;
  // Anything that ends the connection other than close(): transport error, peer close, a
  // refused CONNACK. `fatal` means the target is misbehaving (not just slow).
  virtual void onFailure(const std::string& what, bool fatal) = 0;
  // The output buffer has been written out completely.
  virtual void onDrained() {}

  // Queues bytes for sending; call flush() to push them out.
  std::vector<std::uint8_t>& output() { return out_; }
  std::size_t pendingOutput() const { return out_.size() - out_pos_; }
  void flush();

 private:
  enum class Phase { Handshaking, AwaitingConnack, Open };

  bool advanceHandshake();
  bool readAll();
  bool parseInput();
  void fail(const std::string& what, bool fatal);
  void updateInterest();

  EventLoop& loop_;
  std::unique_ptr<Transport> transport_;
  Phase phase_ = Phase::Handshaking;
  std::uint64_t generation_ = 0;  // bumped by open()/close(), so callbacks notice a new socket
  std::uint32_t interest_ = 0;
  bool write_blocked_ = false;
  bool read_wants_write_ = false;
  Clock::time_point opened_at_{};
  std::vector<std::uint8_t> connect_packet_;
  std::vector<std::uint8_t> in_;
  std::size_t in_pos_ = 0;
  std::size_t in_end_ = 0;
  std::vector<std::uint8_t> out_;
  std::size_t out_pos_ = 0;
};

}  // namespace mqtls::bench

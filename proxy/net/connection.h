// Connection: one client, from accept to close, as an explicit state machine.
//
//   Handshaking --TLS done--> AwaitingConnect --CONNECT accepted--> Dialing --broker up-->
//   Streaming
//        |                          |  \--refused--> Refusing --CONNACK flushed--> Lingering
//        +--fail/timeout--> Closed  +--malformed/timeout--> (Refusing|Closed)
//   Dialing --broker down/timeout--> Refusing (server unavailable)
//   Streaming --either side closes--> Flushing --the other side drained--> Lingering --> Closed
//   Refusing --CONNACK flushed--> Lingering --peer closed or 2 s--> Closed
//
// Every libevent callback becomes an Event passed to dispatch(), the one place that decides.
// The broker is dialled only after the handshake verified the client and the CONNECT passed the
// identity policy. While streaming, bytes move between the two bufferevents untouched; a side
// whose peer's output exceeds the buffer limit stops reading until that output drains.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/model.h"
#include "mqtt/framer.h"
#include "mqtt/packet.h"
#include "ops/logging.h"
#include "ops/metrics.h"
#include "tls/context.h"
#include "tls/peer_identity.h"
#include "util/event_ptr.h"

namespace mqtls::net {

class Connection;

// What a connection needs from the worker that owns it.
struct ConnectionHost {
  virtual ~ConnectionHost() = default;
  virtual event_base* base() = 0;
  virtual evdns_base* dns() = 0;
  virtual const config::Config& config() const = 0;
  virtual ops::Metrics& metrics() = 0;
  // Called once, from dispatch(), when the connection reached Closed; the host destroys it.
  virtual void release(Connection* connection) = 0;
};

class Connection {
 public:
  enum class State {
    Handshaking,      // TLS handshake running under the handshake deadline
    AwaitingConnect,  // TLS established; reading the first packet under the CONNECT deadline
    Dialing,          // CONNECT accepted and rewritten; connecting to the broker
    Streaming,        // both sides open; bytes forwarded in both directions
    Refusing,         // a refusing CONNACK is being flushed to the client, then close
    Flushing,         // one side closed; flushing what it sent to the other side
    Lingering,        // output flushed and write side shut; discarding input until the peer
                      // closes (so unread bytes never turn the close into a data-losing RST)
    Closed,           // resources released; the host destroys the object
  };

  enum class Event {
    HandshakeDone,
    ClientReadable,
    ClientDrained,  // client output fell to its low watermark
    ClientClosed,   // EOF, error or handshake failure on the client side
    UpstreamConnected,
    UpstreamReadable,
    UpstreamDrained,
    UpstreamClosed,  // EOF or error on the broker side (including a failed dial)
    DeadlineExpired,
    Shutdown,  // the drain deadline passed: close now
  };

  Connection(ConnectionHost& host, std::uint64_t id, std::string listener_name,
             tls::TlsContextPtr tls, int fd, const sockaddr* peer, int peer_len);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the handshake. On failure the connection is already released.
  void start();
  // The single dispatch point for everything that happens to this connection.
  void dispatch(Event event);

  State state() const { return state_; }
  std::uint64_t id() const { return id_; }

 private:
  // How long a closing side may take to flush what is owed to it.
  static constexpr std::chrono::seconds kFlushTimeout{5};
  // How long a closing connection waits for its peer to close after our last byte.
  static constexpr std::chrono::seconds kLingerTimeout{2};
  // Broker-to-client bytes gathered per read event (four full TLS records).
  static constexpr std::size_t kCoalesceBytes = 64 * 1024;

  static mqtt::FrameResult peekBuffered(evbuffer* input, std::size_t limit);
  void onHandshakeDone();
  void onHandshakeFailed();
  void readFirstPacket();
  void acceptConnect(std::vector<std::uint8_t> rewritten);
  void onUpstreamConnected();
  void refuse(mqtt::Refusal refusal, std::optional<mqtt::ProtocolLevel> level,
              const std::string& close_reason, const std::string& detail);
  void forward(bufferevent* from, bufferevent* to, ops::Direction direction);
  bool rewriteBrokerConnack();
  void resumeReading(bufferevent* reader, bufferevent* writer);
  void beginFlush(bool client_side_closed, const std::string& reason, const std::string& detail);
  void flushedSide(bufferevent* writer);
  void startLinger(bufferevent* survivor);
  void armDeadline(std::chrono::milliseconds after);
  void close(const std::string& reason, const std::string& detail = {});
  void releaseClient();
  SSL* sendCloseNotify();
  void readMoreFromBroker();

  static void onClientRead(bufferevent* bev, void* self);
  static void onClientWrite(bufferevent* bev, void* self);
  static void onClientEvent(bufferevent* bev, short what, void* self);
  static void onUpstreamRead(bufferevent* bev, void* self);
  static void onUpstreamWrite(bufferevent* bev, void* self);
  static void onUpstreamEvent(bufferevent* bev, short what, void* self);
  static void onDeadline(evutil_socket_t, short, void* self);

  ConnectionHost& host_;
  const std::uint64_t id_;
  const std::string listener_name_;
  tls::TlsContextPtr tls_;  // the snapshot this connection started with
  State state_ = State::Handshaking;
  BufferEventPtr client_;
  BufferEventPtr upstream_;
  EventPtr deadline_;
  std::chrono::steady_clock::time_point accepted_at_;
  std::optional<tls::PeerIdentity> peer_;
  std::string peer_error_;  // why a presented certificate gave no usable identity
  std::optional<mqtt::ProtocolLevel> level_;
  std::optional<std::string> assigned_client_id_;  // MQTT 5: add to the broker's CONNACK
  std::vector<std::uint8_t> pending_connect_;      // rewritten CONNECT awaiting the dial
  std::uint32_t client_max_packet_size_ = 0;
  bool client_finished_ = false;  // the client closed cleanly while the broker was dialled
  bool client_failed_ = false;    // the client side reported an error (not a clean EOF)
  ops::AccessRecord record_;
};

}  // namespace mqtls::net

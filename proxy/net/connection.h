// Connection: one client, from accept to close, as an explicit state machine over two streams
// (net/stream.h): the client's TLS stream and, once admitted, the broker's stream. It never
// touches a socket and never drives the TLS session: it only reads the session's facts (version,
// SNI, the verified certificate, cache results) through the client stream and tls/.
//
//   Handshaking --handshake done--> AwaitingConnect --CONNECT decoded--> Admitting
//   Admitting --accepted--> Dialing --broker connected--> Streaming
//   Streaming --either side closes--> Flushing --survivor flushed, write side shut--> Lingering
//   AwaitingConnect/Admitting/Dialing --refused/malformed/broker down--> Refusing (CONNACK flushed)
//   Refusing --> Lingering --peer closed or kLingerTimeout--> Closed
//   Handshaking --handshake failed--> Lingering (the alert is read, not reset) --> Closed
// Any state --Shutdown (drain deadline)--> Closed.
// Streaming --AdminClose--> Flushing (MQTT 5: DISCONNECT 0x98 first; then a clean TLS close);
// any other state --AdminClose--> Closed.
//
// Every stream callback, timer and late admission answer becomes an Event passed to dispatch(),
// the one place that decides; transition() is the one place that changes state, and checks in
// debug builds that each transition is legal. The broker is dialled only after the handshake
// verified the client and the admission decider accepted its CONNECT.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.h"
#include "mqtt/framer.h"
#include "mqtt/packet.h"
#include "net/admission.h"
#include "net/client_stream.h"
#include "net/packet_step.h"
#include "net/upstream_stream.h"
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
  virtual AdmissionDecider& admission() = 0;
  // Called once, from dispatch(), when the connection reached Closed; the host destroys it.
  virtual void release(Connection* connection) = 0;
};

class Connection final : public StreamObserver {
 public:
  enum class State : std::uint8_t {
    Handshaking,      // TLS handshake running under the handshake deadline
    AwaitingConnect,  // TLS established; reading the first packet under the CONNECT deadline
    Admitting,        // CONNECT decoded; waiting for the admission decision (own deadline)
    Dialing,          // CONNECT accepted and rewritten; connecting to the broker
    Streaming,        // both sides open; bytes (or framed packets) forwarded both ways
    Refusing,         // a refusing CONNACK (or nothing, for 3.x) is flushed to the client
    Flushing,         // one side closed; what it sent is flushed to the other side
    Lingering,        // the survivor's write side is shut; waiting for its peer to close
    Closed,           // resources released; the host destroys the object
  };

  enum class Event : std::uint8_t {
    ClientConnected,  // handshake done
    ClientReadable,
    ClientDrained,   // client output fell to its drain watermark
    ClientFinished,  // client write side shut after our last byte
    ClientClosed,    // EOF, error or handshake failure on the client side
    UpstreamConnected,
    UpstreamReadable,
    UpstreamDrained,
    UpstreamFinished,
    UpstreamClosed,  // EOF or error on the broker side (including a failed dial)
    Admitted,        // the admission decider answered later (verdict_ holds the answer)
    DeadlineExpired,
    Shutdown,    // the drain deadline passed: close now
    AdminClose,  // an administrator closes the connection (DELETE /connections)
  };

  // `listener_metrics` are the counters of `listener_name` (looked up in the host's metrics
  // when null).
  Connection(ConnectionHost& host, std::uint64_t id, std::string listener_name,
             tls::TlsContextPtr tls, int fd, const sockaddr* peer,
             ops::ListenerMetrics* listener_metrics = nullptr);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the handshake. On failure the connection is already released.
  void start();
  // The single dispatch point for everything that happens to this connection.
  void dispatch(Event event);

  State state() const { return state_; }
  std::uint64_t id() const { return id_; }
  const ops::AccessRecord& record() const { return record_; }
  std::chrono::steady_clock::time_point acceptedAt() const { return accepted_at_; }

  static std::string_view stateName(State state);
  static bool legalTransition(State from, State to);

 private:
  // How long a closing side may go without any byte drained before it is given up.
  static constexpr std::chrono::seconds kFlushIdleTimeout{5};
  // How long a closing connection waits for its peer to close after our last byte.
  static constexpr std::chrono::seconds kLingerTimeout{2};
  // A broker CONNACK larger than this is not a CONNACK we can trust.
  static constexpr std::size_t kMaxBrokerConnack = 64 * 1024;

  void onStreamEvent(Stream& stream, StreamEvent event) override;
  void transition(State to);
  void handle(Event event);

  // Per-state handlers, called only by dispatch().
  void whileHandshaking(Event event);
  void whileAwaitingConnect(Event event);
  void whileAdmitting(Event event);
  void whileDialing(Event event);
  void whileStreaming(Event event);
  void whileFlushing(Event event);
  void whileLingering(Event event);

  // Admission (connection_admit.cc).
  void onHandshakeDone();
  void readFirstPacket();
  void admit(mqtt::ConnectPacket connect);
  void holdClientInput();
  void onVerdict();
  void dial();
  void onUpstreamConnected();
  void refuse(mqtt::Refusal refusal, std::optional<mqtt::ProtocolLevel> level,
              const std::string& close_reason, const std::string& detail);
  void onHandshakeFailed();

  // Streaming and closing (connection_stream.cc).
  void forwardFromClient();
  void forwardFromBroker();
  bool forwardFramed(std::size_t limit);
  void endForPacket(std::uint8_t reason_code, const std::string& detail);
  // AdminClose: while streaming, tells an MQTT 5 client (DISCONNECT 0x98) and closes both sides
  // cleanly; in any other state closes now. Close reason "admin".
  void closeByAdmin();
  bool rewriteBrokerConnack();
  void moveToBroker(std::size_t bytes);
  void applyBackPressure(Stream& from, Stream& to);
  void resumeAfterDrain(Stream& reader, Stream& writer);
  void beginFlush(bool client_side_closed, const std::string& reason);
  void finishSurvivor(Stream& survivor, State state);
  void onFlushDeadline();
  void startLinger();
  // Takes its arguments by value: callers pass strings owned by the streams it releases.
  void close(std::string reason, std::string detail = {});

  void armDeadline(std::chrono::milliseconds after);
  Stream* survivor() const;

  ConnectionHost& host_;
  const std::uint64_t id_;
  const std::string listener_name_;
  ops::ListenerMetrics& listener_metrics_;
  tls::TlsContextPtr tls_;  // the snapshot this connection started with
  State state_ = State::Handshaking;
  std::unique_ptr<ClientTlsStream> client_;
  std::unique_ptr<UpstreamStream> upstream_;
  EventPtr deadline_;
  std::chrono::steady_clock::time_point accepted_at_;
  std::chrono::steady_clock::time_point dial_started_;
  // The certificate's identity and why it has none, from the handshake until the verdict (the
  // decider reads them); dropped then, as nothing later needs them (an identity kept with a
  // renewed session lives on with that session).
  std::shared_ptr<const tls::PeerIdentity> peer_;
  std::string peer_error_;
  std::optional<mqtt::ProtocolLevel> level_;
  std::unique_ptr<PendingAdmission> pending_;  // a decision that will arrive later
  std::unique_ptr<Verdict> verdict_;           // the decision, once it arrived (until used)
  bool deciding_ = false;                      // inside decide(): answers are kept, not dispatched
  int dispatch_depth_ = 0;  // dispatch() calls on the stack; only the outermost releases
  std::vector<std::uint8_t> pending_connect_;      // rewritten CONNECT awaiting the dial
  std::optional<std::string> assigned_client_id_;  // MQTT 5: add to the broker's CONNACK
  std::uint32_t client_max_packet_size_ = 0;
  std::unique_ptr<PacketStep> step_;  // framed client-to-broker streaming when set
  std::size_t passthrough_left_ = 0;  // framed: bytes of a packet the step skips, still to move
  bool client_finished_ = false;      // the client closed cleanly before streaming began
  std::size_t flush_mark_ = 0;        // survivor's output size at the last flush check
  ops::AccessRecord record_;
};

}  // namespace mqtls::net

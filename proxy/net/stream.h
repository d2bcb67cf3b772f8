// Stream: one side of a proxied connection (the client, or the broker) behind one interface, so
// that the connection's state machine never touches a socket or drives OpenSSL. A stream kind
// decides how bytes are carried (plain TCP, TLS, later a PROXY header or WebSocket framing); the
// connection only sees two buffers and a few events.
//
// The stream drives its socket itself with two libevent events (readable, writable) and one
// "soon" event that runs queued work later in the same loop turn:
// - Reading stays armed while the stream is open and not paused (nor waiting for writability),
//   so a busy connection costs no epoll_ctl per message. Each readiness reads up to kReadBudget
//   bytes in large pieces.
// - Bytes appended to output() are written on the same loop turn, without waiting for the
//   socket to report writable; EPOLLOUT is armed only while the kernel buffer is full.
//
// Life of a stream:
//   Open --finish()--> Finishing: output still flushing, input discarded
//        --output flushed--> (close_notify where there is TLS, then SHUT_WR) --> Finished event
//   Finished/any --peer EOF or error--> Closed event (the stream then stays quiet)
// Events reach the observer from libevent callbacks, never from inside a call the connection
// makes. The observer may destroy the stream from inside any event.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "net/address.h"
#include "util/event_ptr.h"

namespace mqtls::net {

enum class StreamEvent : std::uint8_t {
  Connected,  // client: TLS handshake done; upstream: TCP connection established
  Readable,   // new bytes in input()
  Drained,    // output() fell to the size given to watchDrain()
  Finished,   // after finish(): everything written, write side shut (close_notify, SHUT_WR)
  Closed,     // peer EOF, error, or failed connect/handshake; see closeKind()
};

enum class CloseKind : std::uint8_t {
  None,   // not closed
  Clean,  // orderly EOF (TCP FIN; on TLS, close_notify or a FIN after a clean session)
  Error,  // reset, protocol error, failed handshake, failed connect
};

class Stream;

class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  virtual void onStreamEvent(Stream& stream, StreamEvent event) = 0;
};

// Base class of the stream kinds: owns the socket, its events and the two buffers, and runs the
// read/write loop. A subclass says how bytes cross the socket (receive/send), what a handshake
// is, and what must be written before the write side is shut.
class Stream {
 public:
  Stream(StreamObserver& observer, event_base* base);
  virtual ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Bytes received and not yet consumed / bytes queued for the peer. Null only if the stream
  // failed to allocate (then a Closed event has been or will be reported).
  evbuffer* input() const { return input_.get(); }
  evbuffer* output() const { return output_.get(); }
  std::size_t outputSize() const;

  void pauseReading();
  // Reading resumes; bytes the transport already holds are read on this loop turn.
  void resumeReading();
  bool readingPaused() const { return paused_; }
  // Drained is reported once, the next time a write leaves output() at `bytes` or below.
  void watchDrain(std::size_t bytes);
  void unwatchDrain() { drain_watched_ = false; }

  // For an open stream (or one whose handshake failed).
  // Ends the stream gracefully: stops delivering input (it is discarded from now on), flushes
  // output(), ends the write side in the order the transport needs, then reports Finished. The
  // stream keeps reading to take the peer's close (Closed) so that unread bytes never turn the
  // close into a data-losing reset. Idempotent. Finished is reported on a later callback.
  void finish();
  bool finishing() const { return finishing_; }
  bool finished() const { return finished_; }

  CloseKind closeKind() const { return close_kind_; }
  // Why the stream closed, for the log (empty for a clean close).
  const std::string& closeDetail() const { return close_detail_; }

  const std::string& peerAddress() const { return peer_address_; }

 protected:
  enum class Phase : std::uint8_t {
    Detached,     // no socket (not attached yet, or between connect attempts)
    Connecting,   // non-blocking connect in flight: waits for writability
    Handshaking,  // transport handshake (TLS) in progress
    Open,         // bytes flow
  };
  enum class Io : std::uint8_t { Progress, WantRead, WantWrite, Eof, Error };
  struct IoResult {
    Io status;
    std::size_t bytes = 0;
    // Progress only: another read may find more at once. When false the read loop stops and
    // leaves the rest to the next readiness (epoll is level-triggered), which saves the read
    // that would only have met EAGAIN.
    bool more = false;
  };

  // Takes ownership of `fd` and starts in `phase`. Returns false (fd closed, Closed reported on
  // a later loop turn) when the events cannot be allocated.
  bool attach(int fd, Phase phase);
  // Closes the socket and its events (a failed connect attempt); the buffers stay.
  void detach();
  int fd() const { return fd_; }
  event_base* base() const { return base_; }
  Phase phase() const { return phase_; }
  void setPeerAddress(std::string address) { peer_address_ = std::move(address); }
  void markClosed(CloseKind kind, std::string detail);
  // Reports Closed(Error) with `detail` on a later loop turn.
  void failLater(std::string detail);
  // Reports `event`. Returns false when the observer destroyed the stream meanwhile: the caller
  // must return at once without touching a member.
  bool emit(StreamEvent event);

  // Transport hooks. receive/send/handshake never block; on Error they have called markClosed.
  virtual IoResult receive(void* into, std::size_t capacity);
  virtual IoResult send(evbuffer* from);
  // Runs the handshake one step; Progress once it is complete.
  virtual IoResult handshake() { return {Io::Progress}; }
  // Bytes the transport holds that no socket readiness will announce (TLS records read ahead).
  virtual bool holdsInput() const { return false; }
  // After a non-blocking connect: `error` is its result (0: connected). The default reports
  // Connected or Closed.
  virtual bool onConnectResult(int error);
  // Reports Connected. Returns false when the observer destroyed the stream.
  virtual bool onConnected() { return emit(StreamEvent::Connected); }
  // The transport is ready (connected, handshake done): reports Connected and starts moving
  // bytes. Returns false when the observer destroyed the stream.
  bool becomeOpen();
  // Writes whatever must precede the write shutdown (TLS close_notify). Returns true when done;
  // false when it must be retried once the socket is writable.
  virtual bool writeTrailer() { return true; }
  // Sends what the transport gathered from the send() calls of one flush (TLS records held for
  // one system call): Progress when nothing is left, WantWrite when the socket is full, Error
  // (after markClosed) when the socket failed. Called after every flush of output().
  virtual IoResult flushTransport() { return {Io::Progress}; }
  // Runs a flush on this loop turn (the transport wrote while reading), unless the socket is
  // known full (its writability runs one).
  void flushSoon() {
    if (!write_blocked_) {
      schedule(kSoonFlush);
    }
  }
  // Shuts the write side of the socket (after the trailer).
  virtual void shutdownWrite();
  // Whether the socket may still be read after a Closed was reported (a failed TLS handshake
  // keeps reading raw bytes so the client reads the alert rather than a reset).
  virtual bool readableAfterClose() const { return false; }

 private:
  static constexpr std::size_t kReadChunk = 64 * 1024;   // bytes per read call at most
  static constexpr std::size_t kReadBudget = 64 * 1024;  // bytes per readiness at most

  enum Soon : std::uint8_t { kSoonRead = 1, kSoonFlush = 2, kSoonClosed = 4 };

  static void readyCallback(evutil_socket_t fd, short what, void* self);
  static void heldReadCallback(evutil_socket_t fd, short what, void* self);
  static void soonCallback(evutil_socket_t fd, short what, void* self);
  static void outputChanged(evbuffer* buffer, const evbuffer_cb_info* info, void* self);

  int sendBeforeShutdown(evbuffer* from);
  void schedule(std::uint8_t work);
  void readHeldLater();
  bool onReadable();
  bool onWritable();
  bool stepHandshake();
  bool readInput();
  bool flushOutput();
  bool completeFinish();
  bool reportClosed();
  void syncInterest();

  StreamObserver& observer_;
  event_base* base_;
  int fd_ = -1;
  Phase phase_ = Phase::Detached;
  EvBufferPtr input_;
  EvBufferPtr output_;
  EventPtr read_event_;
  EventPtr write_event_;
  EventPtr soon_event_;
  EventPtr held_read_;     // made on first use: records read ahead, taken after a budget ran out
  bool* alive_ = nullptr;  // set to false by the destructor while an event is being reported
  std::uint8_t soon_ = 0;
  std::size_t drain_mark_ = 0;
  bool drain_watched_ = false;
  bool read_armed_ = false;
  bool write_armed_ = false;
  bool read_wants_write_ = false;       // the transport needs writability to go on reading
  bool write_wants_read_ = false;       // ... readability to go on writing
  bool write_blocked_ = false;          // the socket buffer is full
  bool handshake_wants_write_ = false;  // the handshake waits for writability
  bool trailer_pending_ = false;        // the trailer waits for writability
  bool read_done_ = false;              // EOF or error seen: no more reading
  bool write_done_ = false;             // error: no more writing
  bool closed_reported_ = false;
  bool paused_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  CloseKind close_kind_ = CloseKind::None;
  std::string close_detail_;
  std::string peer_address_;
};

}  // namespace mqtls::net

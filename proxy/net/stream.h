// Stream: one side of a proxied connection (the client, or the broker) behind one interface, so
// that the connection's state machine never touches sockets, OpenSSL or bufferevents itself.
// A stream kind decides how bytes are carried (plain TCP, TLS, later a PROXY header or
// WebSocket framing); the connection only sees buffers and events.
//
// Life of a stream:
//   Open --finish()--> Finishing: output still flushing, input discarded
//        --output flushed--> (close_notify where there is TLS, then SHUT_WR) --> Finished event
//   Finished/any --peer EOF or error--> Closed event
// Events are delivered to the observer from libevent callbacks (deferred, never from inside a
// call the connection makes), except where a method says otherwise.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/event_ptr.h"

struct evbuffer;

namespace mqtls::net {

enum class StreamEvent : std::uint8_t {
  Connected,  // client: TLS handshake done; upstream: TCP connection established
  Readable,   // new bytes in input()
  Drained,    // output() fell to the drain watermark
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

// Base class for streams carried by one libevent bufferevent. Owns the bufferevent (and with it
// the socket). Subclasses add how the bufferevent is made and what "finish" writes first.
class Stream {
 public:
  explicit Stream(StreamObserver& observer) : observer_(observer) {}
  virtual ~Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Bytes received and not yet consumed / bytes queued for the peer. Null only if the stream
  // failed to allocate (then a Closed event has been or will be reported).
  evbuffer* input() const;
  evbuffer* output() const;
  std::size_t outputSize() const;

  void pauseReading();
  void resumeReading();
  bool readingPaused() const { return paused_; }
  // Drained is reported when output() falls to `bytes` or below.
  void setDrainWatermark(std::size_t bytes);

  // Called after bytes were appended to output(): lets the stream shape what it sends (a TLS
  // stream coalesces small chunks into full records).
  virtual void outputAppended() {}
  // Reads what the socket already holds, up to `bytes` buffered in input(), without waiting.
  // Streams for which this is not cheap or not meaningful do nothing.
  virtual void readAhead(std::size_t bytes) {}

  // Ends the stream gracefully: stops delivering input (it is discarded from now on), flushes
  // output(), ends the write side in the order the transport needs, then reports Finished. The
  // stream stays open to take the peer's close (Closed) so that unread bytes never turn the close
  // into a data-losing reset. Idempotent. Finished is reported on a later loop turn, never from
  // inside this call.
  void finish();
  bool finishing() const { return finishing_; }
  bool finished() const { return finished_; }

  CloseKind closeKind() const { return close_kind_; }
  // Why the stream closed, for the log (empty for a clean close).
  const std::string& closeDetail() const { return close_detail_; }

  const std::string& peerAddress() const { return peer_address_; }

 protected:
  // Takes ownership of `bev` and routes its callbacks here. `bev` may be null (allocation
  // failure): the stream then reports Closed(Error) on the next loop turn via failLater().
  void adopt(bufferevent* bev);
  bufferevent* bev() const { return bev_.get(); }
  void releaseBufferEvent() { bev_.reset(); }
  void notify(StreamEvent event) { observer_.onStreamEvent(*this, event); }
  void markClosed(CloseKind kind, std::string detail);

  // Subclass hooks.
  virtual void onConnected() { notify(StreamEvent::Connected); }
  virtual void onError(short what);
  // Writes whatever must precede the write shutdown (TLS close_notify). Returns true when done;
  // false when it must be retried once the socket is writable.
  virtual bool writeTrailer() { return true; }
  // Shuts the write side of the socket (after the trailer).
  virtual void shutdownWrite();

  void setPeerAddress(std::string address) { peer_address_ = std::move(address); }
  int fd() const;

 private:
  static void readCallback(bufferevent* bev, void* self);
  static void writeCallback(bufferevent* bev, void* self);
  static void eventCallback(bufferevent* bev, short what, void* self);
  static void trailerCallback(evutil_socket_t fd, short what, void* self);
  static void finishLaterCallback(evutil_socket_t fd, short what, void* self);
  void completeFinish();

  StreamObserver& observer_;
  BufferEventPtr bev_;
  EventPtr trailer_retry_;  // socket writability while a TLS close_notify waits for room
  EventPtr finish_later_;   // completes a finish() whose output was already empty
  bool paused_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  CloseKind close_kind_ = CloseKind::None;
  std::string close_detail_;
  std::string peer_address_;
};

// "ip:port" or "[ip6]:port" for an address, "unix" for a Unix socket.
std::string formatAddress(const sockaddr* addr);

}  // namespace mqtls::net

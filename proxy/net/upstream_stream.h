// UpstreamStream: the broker side, a plain TCP or Unix-socket connection dialled by the proxy.
//
// dial() resolves the broker's name through evdns (never blocking) and tries every address it
// gets in turn, each attempt bounded by its share of the remaining `connect_timeout`, until one
// connects (Connected) or none is left (Closed(Error), closeDetail() says what each attempt
// met). A Unix socket whose backlog is full (connect's EAGAIN: the broker is slow to accept, where
// TCP would have queued the connection) is tried again after pauses doubling from 1 ms to 50 ms
// (each jittered by +-50%), while the connect timeout allows. Destroying the stream at any point
// cancels resolution and the attempt in flight.
#pragma once

#include <event2/dns.h>
#include <event2/util.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <vector>

#include "config/model.h"
#include "net/stream.h"

namespace mqtls::net {

class UpstreamStream final : public Stream {
 public:
  UpstreamStream(StreamObserver& observer, event_base* base, evdns_base* dns);
  ~UpstreamStream() override;

  // Starts connecting to `upstream` (host name, address, or unix_socket). Results arrive as
  // Connected or Closed events on later loop turns, never from inside this call.
  void dial(const config::Upstream& upstream);

  // After Closed: true when the stream gave up because `connect_timeout` ran out (its last
  // attempt timed out, or a full Unix backlog left no time for another try), false when every
  // address failed otherwise (refused, unreachable, not resolved). Lets the owner count a
  // timeout as one whichever of its own deadline and this stream's last attempt ends first.
  bool timedOut() const { return timed_out_; }

 protected:
  bool onConnectResult(int error) override;

 private:
  static void resolvedCallback(int result, evutil_addrinfo* addresses, void* self);
  static void attemptTimeoutCallback(evutil_socket_t, short, void* self);
  void onResolved(int result, evutil_addrinfo* addresses);
  void tryNextAddress();
  void attemptFailed(const std::string& why, bool timed_out);
  // Arms the attempt timer for the next pause before connecting again to a Unix socket whose
  // backlog was full; false (nothing armed) when the pause would reach the deadline.
  bool pauseForFullBacklog();

  evdns_base* dns_;
  evdns_getaddrinfo_request* resolving_ = nullptr;
  std::vector<sockaddr_storage> addresses_;
  std::vector<socklen_t> address_lengths_;
  std::size_t next_address_ = 0;
  std::string attempt_errors_;  // "addr: reason; ..." for the log
  std::chrono::steady_clock::time_point deadline_;
  EventPtr attempt_timer_;  // null once connected
  std::chrono::milliseconds backlog_pause_{0};
  int backlog_tries_ = 0;
  bool backlog_waiting_ = false;  // the attempt timer ends a pause, not an attempt
  bool timed_out_ = false;        // the last attempt (or backlog pause) ran out of time
};

// "host:port" or "unix:/path", for logs.
std::string describeUpstream(const config::Upstream& upstream);

}  // namespace mqtls::net

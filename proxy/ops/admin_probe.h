// UpstreamProbe: one TCP (or Unix socket) connect to the broker, on an event loop, without
// blocking it: the answer to "does the broker answer?" for /readyz.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "config/model.h"
#include "util/event_ptr.h"

namespace mqtls::ops {

class UpstreamProbe {
 public:
  // ok, and when not ok why not ("connection refused", "timed out after 2000 ms", ...).
  using Done = std::function<void(bool ok, const std::string& detail)>;

  UpstreamProbe(event_base* base, const config::Upstream& upstream,
                std::chrono::milliseconds timeout, Done done);
  ~UpstreamProbe();
  UpstreamProbe(const UpstreamProbe&) = delete;
  UpstreamProbe& operator=(const UpstreamProbe&) = delete;

  // Starts one attempt unless one is running. `done` is called on the loop's thread, once per
  // attempt, never from inside start(); the connection is closed at once when it succeeds.
  void start();
  bool running() const { return static_cast<bool>(attempt_); }
  // "host:port" or the socket path, for messages.
  const std::string& target() const { return target_; }

 private:
  void finish(bool ok, const std::string& detail);
  static void onEvent(bufferevent* bev, short what, void* self);

  event_base* base_;
  const config::Upstream upstream_;
  const std::chrono::milliseconds timeout_;
  Done done_;
  std::string target_;
  DnsBasePtr dns_;
  BufferEventPtr attempt_;
  EventPtr report_;  // reports a failure to start on the next loop turn
  std::string pending_detail_;
};

}  // namespace mqtls::ops

// A minimal level-triggered epoll loop: handlers register file descriptors and get called with
// the ready events; run() returns at a deadline or when stop() is called.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace mqtls::bench {

using Clock = std::chrono::steady_clock;

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void onEvents(std::uint32_t events) = 0;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void add(int fd, EventHandler* handler, std::uint32_t events);
  void modify(int fd, EventHandler* handler, std::uint32_t events);
  void remove(int fd);

  // Dispatches events until `deadline` or stop(); `after_batch` (optional) runs after every
  // batch of events, for work that is cheaper done once per batch than once per event.
  void run(Clock::time_point deadline, const std::function<void()>& after_batch = {});
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

 private:
  int epoll_fd_ = -1;
  bool stopped_ = false;
};

}  // namespace mqtls::bench

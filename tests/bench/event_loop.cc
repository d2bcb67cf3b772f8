#include "event_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mqtls::bench {

EventLoop::EventLoop() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {
  if (epoll_fd_ < 0) {
    throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  }
}

EventLoop::~EventLoop() {
  ::close(epoll_fd_);
}

void EventLoop::add(int fd, EventHandler* handler, std::uint32_t events) {
  epoll_event event{events, {.ptr = handler}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
}

void EventLoop::modify(int fd, EventHandler* handler, std::uint32_t events) {
  epoll_event event{events, {.ptr = handler}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event);
}

void EventLoop::remove(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::run(Clock::time_point deadline, const std::function<void()>& after_batch) {
  stopped_ = false;
  epoll_event events[64];
  while (!stopped_) {
    auto now = Clock::now();
    if (now >= deadline) {
      return;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    int timeout = static_cast<int>(std::clamp<long long>(left, 1, 50));
    int count = epoll_wait(epoll_fd_, events, 64, timeout);
    for (int i = 0; i < count && !stopped_; ++i) {
      static_cast<EventHandler*>(events[i].data.ptr)->onEvents(events[i].events);
    }
    if (after_batch && !stopped_) {
      after_batch();
    }
  }
}

}  // namespace mqtls::bench

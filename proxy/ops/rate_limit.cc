#include "ops/rate_limit.h"

namespace mqtls::ops {

LogRateLimiter::LogRateLimiter(std::size_t burst, Clock::duration interval,
                               std::function<void()> on_suppressed)
    : burst_(burst), interval_(interval), on_suppressed_(std::move(on_suppressed)) {}

LogRateLimiter::Decision LogRateLimiter::admit(std::string_view key, Clock::time_point now) {
  Decision decision;
  {
    std::lock_guard lock(mutex_);
    auto found = windows_.find(key);
    if (found == windows_.end()) {
      const std::string_view slot = windows_.size() < kMaxKeys ? key : std::string_view("other");
      found = windows_.find(slot);
      if (found == windows_.end()) {
        found = windows_.emplace(std::string(slot), Window{now, 0, 0}).first;
      }
    }
    Window& window = found->second;
    if (now - window.start >= interval_) {
      decision.suppressed = window.dropped;
      window = Window{now, 0, 0};
    }
    if (window.written < burst_) {
      ++window.written;
      decision.write = true;
    } else {
      ++window.dropped;
    }
  }
  if (!decision.write && on_suppressed_) {
    on_suppressed_();
  }
  return decision;
}

}  // namespace mqtls::ops

// Rate limits for repeated log lines. A client failing its handshake a thousand times a second
// must not fill the disk or drown every other line: each kind of line (its key, the message
// template) is written at most `burst` times per `interval`; what is dropped is counted, and the
// next line of that key written afterwards is preceded by one "suppressed K similar lines".
// Only for per-connection warn and error lines; never for the access log.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace mqtls::ops {

// The decision part, with the clock passed in. Thread-safe; one short lock per call.
class LogRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // How many distinct keys are tracked; further keys share one slot ("other").
  static constexpr std::size_t kMaxKeys = 256;

  struct Decision {
    bool write = false;            // write this line
    std::uint64_t suppressed = 0;  // lines of this key dropped before it; say so first
  };

  // `on_suppressed` is called (under no lock of ours) once per dropped line.
  LogRateLimiter(std::size_t burst, Clock::duration interval,
                 std::function<void()> on_suppressed = {});

  // One line of `key` is about to be written at `now`. Fixed windows per key: the first line
  // opens a window of `interval`; `burst` lines are written in it, the rest are dropped. The
  // first line written in a later window carries the count dropped before it.
  Decision admit(std::string_view key, Clock::time_point now);

 private:
  struct Window {
    Clock::time_point start;
    std::size_t written = 0;
    std::uint64_t dropped = 0;
  };

  const std::size_t burst_;
  const Clock::duration interval_;
  std::function<void()> on_suppressed_;
  std::mutex mutex_;
  std::map<std::string, Window, std::less<>> windows_;
};

// spdlog warn/error lines through a LogRateLimiter.
class RateLimitedLog {
 public:
  RateLimitedLog(std::size_t burst, LogRateLimiter::Clock::duration interval,
                 std::function<void()> on_suppressed)
      : limiter_(burst, interval, std::move(on_suppressed)) {}

  template <typename... Args>
  void warn(std::string_view key, spdlog::format_string_t<Args...> format, Args&&... args) {
    log(spdlog::level::warn, key, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(std::string_view key, spdlog::format_string_t<Args...> format, Args&&... args) {
    log(spdlog::level::err, key, format, std::forward<Args>(args)...);
  }

  LogRateLimiter& limiter() { return limiter_; }

 private:
  template <typename... Args>
  void log(spdlog::level::level_enum level, std::string_view key,
           spdlog::format_string_t<Args...> format, Args&&... args) {
    if (!spdlog::should_log(level)) {
      return;  // not written anyway: neither limited nor counted
    }
    auto decision = limiter_.admit(key, LogRateLimiter::Clock::now());
    if (decision.suppressed > 0) {
      spdlog::log(level, "suppressed {} similar lines ({})", decision.suppressed, key);
    }
    if (decision.write) {
      spdlog::log(level, format, std::forward<Args>(args)...);
    }
  }

  LogRateLimiter limiter_;
};

}  // namespace mqtls::ops

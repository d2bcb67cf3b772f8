// Log rate limit: at most `burst` lines per key per interval, the rest counted and announced
// once by the next line written; keys are independent; concurrent callers lose no count.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "ops/rate_limit.h"

namespace mqtls::ops {
namespace {

using Clock = LogRateLimiter::Clock;
using std::chrono::seconds;

TEST(LogRateLimiter, WritesBurstThenDropsUntilTheWindowEnds) {
  int dropped = 0;
  LogRateLimiter limiter(3, seconds(10), [&dropped] { ++dropped; });
  const auto t0 = Clock::time_point{} + seconds(1000);
  for (int i = 0; i < 3; ++i) {
    auto d = limiter.admit("handshake_failed", t0 + seconds(i));
    EXPECT_TRUE(d.write) << i;
    EXPECT_EQ(d.suppressed, 0u);
  }
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(limiter.admit("handshake_failed", t0 + seconds(5)).write);
  }
  EXPECT_EQ(dropped, 1000);
  // Another key is not affected.
  EXPECT_TRUE(limiter.admit("connect_refused", t0 + seconds(5)).write);
  // Just before the window ends: still dropped.
  EXPECT_FALSE(limiter.admit("handshake_failed", t0 + seconds(9)).write);
  // The next window: written, announcing what was dropped, once.
  auto next = limiter.admit("handshake_failed", t0 + seconds(10));
  EXPECT_TRUE(next.write);
  EXPECT_EQ(next.suppressed, 1001u);
  auto after = limiter.admit("handshake_failed", t0 + seconds(11));
  EXPECT_TRUE(after.write);
  EXPECT_EQ(after.suppressed, 0u);
  EXPECT_EQ(dropped, 1001);
}

TEST(LogRateLimiter, KeysBeyondTheLimitShareOneSlot) {
  LogRateLimiter limiter(1, seconds(10));
  const auto now = Clock::time_point{} + seconds(1);
  for (std::size_t i = 0; i < LogRateLimiter::kMaxKeys; ++i) {
    EXPECT_TRUE(limiter.admit("key" + std::to_string(i), now).write);
  }
  EXPECT_TRUE(limiter.admit("new-a", now).write);   // opens the shared slot
  EXPECT_FALSE(limiter.admit("new-b", now).write);  // shares it
  EXPECT_FALSE(limiter.admit("key0", now).write);   // its own window, already used
}

TEST(LogRateLimiter, ConcurrentCallersAreCountedExactly) {
  std::atomic<int> dropped{0};
  std::atomic<int> written{0};
  LogRateLimiter limiter(10, seconds(3600), [&dropped] { ++dropped; });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        if (limiter.admit("same", Clock::now()).write) {
          ++written;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(written.load(), 10);
  EXPECT_EQ(dropped.load(), 20000 - 10);
}

}  // namespace
}  // namespace mqtls::ops

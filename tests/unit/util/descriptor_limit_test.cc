#include "util/descriptor_limit.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace mqtls {
namespace {

constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

struct PlanCase {
  const char* what;
  std::uint64_t soft, hard;
  std::size_t max_connections;
  std::uint64_t expect_soft;
  std::size_t expect_connections;
};

// With a reserve of 150 descriptors, two per connection.
constexpr PlanCase kPlans[] = {
    {"an ample limit stays as it is", 65536, 65536, 10000, 65536, 10000},
    {"the soft limit rises to what is needed, not to the hard limit", 1024, 524288, 10000, 20150,
     10000},
    {"a hard limit too low admits what it has room for", 1024, 20000, 10000, 20000, 9925},
    {"a limit below the reserve still admits one", 64, 64, 10000, 64, 1},
    {"an unlimited soft limit is never lowered", kUnlimited, kUnlimited, 10, kUnlimited, 10},
    {"a soft limit above the need is never lowered", 1000000, kUnlimited, 10, 1000000, 10},
    {"an unlimited hard limit gives what is needed", 1024, kUnlimited, 1000000, 2000150, 1000000},
};

TEST(DescriptorBudgetTest, Plans) {
  for (const auto& plan : kPlans) {
    SCOPED_TRACE(plan.what);
    DescriptorBudget budget = planDescriptorBudget(plan.soft, plan.hard, plan.max_connections, 150);
    EXPECT_EQ(budget.soft_before, plan.soft);
    EXPECT_EQ(budget.soft, plan.expect_soft);
    EXPECT_EQ(budget.connections, plan.expect_connections);
    EXPECT_EQ(budget.limited(), plan.expect_connections < plan.max_connections);
  }
  EXPECT_EQ(planDescriptorBudget(1024, 20000, 10000, 150).needed, 20150u);
  // A need too large to count does not wrap around: it is unlimited.
  EXPECT_EQ(planDescriptorBudget(1024, kUnlimited, SIZE_MAX, 150).needed, kUnlimited);
}

TEST(DescriptorBudgetTest, TheReserveGrowsWithWorkersAndListeners) {
  EXPECT_LT(reservedDescriptors(1, 1), reservedDescriptors(4, 1));
  EXPECT_LT(reservedDescriptors(4, 1), reservedDescriptors(4, 3));
  EXPECT_EQ(reservedDescriptors(0, 1), reservedDescriptors(1, 1));
  // Room for what an idle process holds (measured: 17 + 5 per worker) and more.
  EXPECT_GE(reservedDescriptors(1, 1), 17u + 5u + 64u);
}

// In a child process, since it lowers the hard limit for good: returns the child's exit code.
template <typename Check>
int inChild(Check check) {
  pid_t pid = fork();
  if (pid == 0) {
    _exit(check());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(DescriptorBudgetTest, ApplyingRaisesTheProcessSoftLimit) {
  EXPECT_EQ(inChild([] {
              rlimit start{100, 1000};
              if (setrlimit(RLIMIT_NOFILE, &start) != 0)
                return 10;
              DescriptorBudget budget = applyDescriptorBudget(200, 150);
              rlimit now{};
              getrlimit(RLIMIT_NOFILE, &now);
              if (now.rlim_cur != 550 || now.rlim_max != 1000)
                return 11;
              if (budget.soft_before != 100 || budget.soft != 550)
                return 12;
              return budget.connections == 200 && !budget.limited() ? 0 : 13;
            }),
            0);
}

TEST(DescriptorBudgetTest, ApplyingUnderALowHardLimitAdmitsFewer) {
  EXPECT_EQ(inChild([] {
              rlimit start{100, 300};
              if (setrlimit(RLIMIT_NOFILE, &start) != 0)
                return 10;
              DescriptorBudget budget = applyDescriptorBudget(200, 150);
              rlimit now{};
              getrlimit(RLIMIT_NOFILE, &now);
              if (now.rlim_cur != 300)
                return 11;
              return budget.connections == 75 && budget.limited() ? 0 : 12;
            }),
            0);
}

TEST(DescriptorBudgetTest, ARefusedRaiseKeepsTheLimitInForceAndSaysWhy) {
  EXPECT_EQ(inChild([] {
              rlimit start{100, 1000};
              if (setrlimit(RLIMIT_NOFILE, &start) != 0)
                return 10;
              DescriptorBudget budget = applyDescriptorBudget(200, 50, [](const rlimit&) {
                errno = EPERM;
                return -1;
              });
              rlimit now{};
              getrlimit(RLIMIT_NOFILE, &now);
              if (now.rlim_cur != 100)
                return 11;
              if (budget.raise_error != EPERM || budget.wanted_soft != 450)
                return 12;
              if (budget.soft != 100 || budget.hard != 1000)
                return 13;
              return budget.connections == 25 && budget.limited() ? 0 : 14;
            }),
            0);
}

}  // namespace
}  // namespace mqtls

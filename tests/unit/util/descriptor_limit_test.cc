#include "util/descriptor_limit.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <limits>

namespace mqtls {
namespace {

constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

TEST(DescriptorBudgetTest, AnAmpleLimitStaysAsItIs) {
  DescriptorBudget budget = planDescriptorBudget(65536, 65536, 10000, 150);
  EXPECT_EQ(budget.soft, 65536u);
  EXPECT_EQ(budget.needed, 20150u);
  EXPECT_EQ(budget.connections, 10000u);
  EXPECT_FALSE(budget.limited());
}

TEST(DescriptorBudgetTest, TheSoftLimitRisesToWhatIsNeededNotToTheHardLimit) {
  DescriptorBudget budget = planDescriptorBudget(1024, 524288, 10000, 150);
  EXPECT_EQ(budget.soft_before, 1024u);
  EXPECT_EQ(budget.soft, 20150u);
  EXPECT_EQ(budget.connections, 10000u);
  EXPECT_FALSE(budget.limited());
}

TEST(DescriptorBudgetTest, AHardLimitTooLowAdmitsWhatItHasRoomFor) {
  DescriptorBudget budget = planDescriptorBudget(1024, 20000, 10000, 150);
  EXPECT_EQ(budget.soft, 20000u);
  EXPECT_EQ(budget.connections, (20000u - 150u) / 2);
  EXPECT_TRUE(budget.limited());
  EXPECT_EQ(budget.needed, 20150u);
}

TEST(DescriptorBudgetTest, ALimitBelowTheReserveStillAdmitsOne) {
  DescriptorBudget budget = planDescriptorBudget(64, 64, 10000, 150);
  EXPECT_EQ(budget.soft, 64u);
  EXPECT_EQ(budget.connections, 1u);
  EXPECT_TRUE(budget.limited());
}

TEST(DescriptorBudgetTest, TheSoftLimitIsNeverLowered) {
  DescriptorBudget budget = planDescriptorBudget(kUnlimited, kUnlimited, 10, 150);
  EXPECT_EQ(budget.soft, kUnlimited);
  EXPECT_EQ(budget.connections, 10u);
  budget = planDescriptorBudget(1000000, kUnlimited, 10, 150);
  EXPECT_EQ(budget.soft, 1000000u);
}

TEST(DescriptorBudgetTest, AnUnlimitedHardLimitGivesWhatIsNeeded) {
  DescriptorBudget budget = planDescriptorBudget(1024, kUnlimited, 1000000, 150);
  EXPECT_EQ(budget.soft, 2000150u);
  EXPECT_EQ(budget.connections, 1000000u);
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

#include "util/descriptor_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <limits>

namespace mqtls {
namespace {

constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

std::uint64_t fromRlim(rlim_t value) {
  return value == RLIM_INFINITY ? kUnlimited : static_cast<std::uint64_t>(value);
}

rlim_t toRlim(std::uint64_t value) {
  return value == kUnlimited ? RLIM_INFINITY : static_cast<rlim_t>(value);
}

}  // namespace

std::uint64_t reservedDescriptors(int workers, std::size_t listeners) {
  const auto loops = static_cast<std::uint64_t>(std::max(workers, 1));
  return 128 + loops * (8 + static_cast<std::uint64_t>(listeners));
}

DescriptorBudget planDescriptorBudget(std::uint64_t soft, std::uint64_t hard,
                                      std::size_t max_connections, std::uint64_t reserved) {
  DescriptorBudget budget;
  budget.soft_before = soft;
  budget.hard = hard;
  budget.reserved = reserved;
  const auto wanted = static_cast<std::uint64_t>(max_connections);
  budget.needed = wanted > (kUnlimited - reserved) / kDescriptorsPerConnection
                      ? kUnlimited
                      : reserved + wanted * kDescriptorsPerConnection;
  budget.soft = std::max(soft, std::min(budget.needed, hard));
  const std::uint64_t room = budget.soft > reserved ? budget.soft - reserved : 0;
  budget.connections = static_cast<std::size_t>(
      std::max<std::uint64_t>(1, std::min(wanted, room / kDescriptorsPerConnection)));
  return budget;
}

DescriptorBudget applyDescriptorBudget(std::size_t max_connections, std::uint64_t reserved,
                                       SetDescriptorLimit set) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return planDescriptorBudget(kUnlimited, kUnlimited, max_connections, reserved);
  }
  DescriptorBudget budget = planDescriptorBudget(fromRlim(limit.rlim_cur), fromRlim(limit.rlim_max),
                                                 max_connections, reserved);
  if (budget.soft != budget.soft_before) {
    const rlimit raised{toRlim(budget.soft), limit.rlim_max};
    const int status = set != nullptr ? set(raised) : setrlimit(RLIMIT_NOFILE, &raised);
    if (status != 0) {
      // Refused (a sandbox, a seccomp filter): plan within the limit that stays.
      const int error = errno;
      const std::uint64_t wanted_soft = budget.soft;
      budget =
          planDescriptorBudget(budget.soft_before, budget.soft_before, max_connections, reserved);
      budget.hard = fromRlim(limit.rlim_max);
      budget.wanted_soft = wanted_soft;
      budget.raise_error = error != 0 ? error : EPERM;
    }
  }
  return budget;
}

}  // namespace mqtls

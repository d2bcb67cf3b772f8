// The process's open-file budget: every proxied connection holds two descriptors (the client's
// socket and the broker's), and the soft RLIMIT_NOFILE a service starts with is often 1024
// (a login shell, some container runtimes) whatever limits.max_connections says. At start mqtls
// raises the soft limit as far as the configuration needs and the hard limit allows (as HAProxy
// and Go programs do), and where that is not enough it admits only as many connections as the
// descriptors allow: beyond them a connection is refused at accept, which a client retries,
// instead of failing at its broker dial after it authenticated, or accept failing with EMFILE
// for every client at once.
#pragma once

#include <sys/resource.h>

#include <cstddef>
#include <cstdint>

namespace mqtls {

struct DescriptorBudget {
  std::uint64_t soft_before = 0;  // soft RLIMIT_NOFILE found at start
  std::uint64_t soft = 0;         // soft limit in force after raising it
  std::uint64_t hard = 0;         // hard limit (UINT64_MAX: unlimited)
  std::uint64_t needed = 0;       // what the configured connections and the reserve need
  std::uint64_t reserved = 0;     // descriptors kept for everything but connections
  std::size_t connections = 0;    // connections admitted: the configured ones, or fewer
  std::uint64_t wanted_soft = 0;  // the soft limit asked for when raising was refused
  int raise_error = 0;            // errno of a refused setrlimit; 0 if none was refused
  bool limited() const { return soft < needed; }
};

// Descriptors per proxied connection: the client socket and the broker socket.
inline constexpr std::uint64_t kDescriptorsPerConnection = 2;

// Descriptors mqtls keeps for itself with `workers` event loops and `listeners` listeners: its
// own event loops, wake-up pipes and listening sockets (measured: 17 + 5 per worker), the admin
// listener and its clients, broker checks, OCSP fetches, files read at reload, logs.
std::uint64_t reservedDescriptors(int workers, std::size_t listeners);

// Pure: the budget for `max_connections` under the limits `soft` and `hard` (UINT64_MAX:
// unlimited), raising the soft limit no further than needed and never lowering it. At least
// one connection is admitted, whatever the limit.
DescriptorBudget planDescriptorBudget(std::uint64_t soft, std::uint64_t hard,
                                      std::size_t max_connections, std::uint64_t reserved);

// Sets RLIMIT_NOFILE; 0 or -1 with errno set, as setrlimit.
using SetDescriptorLimit = int (*)(const rlimit& limit);

// Reads RLIMIT_NOFILE, raises its soft limit as planDescriptorBudget says (through `set`, null:
// setrlimit), and returns the budget in force. If setrlimit is refused, the budget is that of
// the limit that stays, with raise_error and wanted_soft saying what was refused; if getrlimit
// fails, the limit is unknown and the configuration is taken as it is.
DescriptorBudget applyDescriptorBudget(std::size_t max_connections, std::uint64_t reserved,
                                       SetDescriptorLimit set = nullptr);

}  // namespace mqtls

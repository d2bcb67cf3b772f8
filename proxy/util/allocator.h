#pragma once

namespace mqtls {

// The allocator that serves this process's malloc: "mimalloc" when the build linked it and a live
// allocation shows it really replaced the C library's malloc, otherwise "system". Never fails.
const char* allocatorInUse();

}  // namespace mqtls

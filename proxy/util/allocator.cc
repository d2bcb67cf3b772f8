#include "util/allocator.h"

#include <cstdlib>

#ifdef MQTLS_WITH_MIMALLOC
#include <mimalloc.h>
#endif

namespace mqtls {

const char* allocatorInUse() {
#ifdef MQTLS_WITH_MIMALLOC
  // Linked is not the same as in use (an LD_PRELOAD of another allocator wins): ask mimalloc
  // whether the block calloc just returned is one of its own.
  void* probe = std::calloc(1, 64);
  const bool mimalloc = probe != nullptr && mi_is_in_heap_region(probe);
  std::free(probe);
  return mimalloc ? "mimalloc" : "system";
#else
  return "system";
#endif
}

}  // namespace mqtls

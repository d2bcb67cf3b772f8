#include "tls/context_store.h"

namespace mqtls::tls {

TlsContextPtr ContextStore::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void ContextStore::replace(TlsContextPtr next) {
  std::lock_guard lock(mutex_);
  current_ = std::move(next);
}

}  // namespace mqtls::tls

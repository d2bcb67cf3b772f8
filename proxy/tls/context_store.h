// ContextStore: the one holder of each listener's current TLS snapshot. current() returns the
// snapshot new handshakes must use; replace() publishes a fully built one atomically. Safe to
// call from any worker thread.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "tls/context.h"

namespace mqtls::tls {

class ContextStore {
 public:
  explicit ContextStore(TlsContextPtr initial) : current_(std::move(initial)) {}

  // The snapshot to use for a new connection; never null.
  TlsContextPtr current() const;
  // Publishes `next` (must be non-null) for connections accepted from now on.
  void replace(TlsContextPtr next);

 private:
  mutable std::mutex mutex_;
  TlsContextPtr current_;
};

}  // namespace mqtls::tls

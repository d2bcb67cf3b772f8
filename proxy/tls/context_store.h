// ContextStore: the one holder of each listener's current TLS snapshot, and the one place a
// listener's snapshot is built, at start and on every reload (ContextStore::build). current()
// returns the snapshot new handshakes must use; rebuild() and replace() publish a new one
// atomically for every worker. Connections keep the snapshot they started with (a shared_ptr),
// so a replacement never disturbs them. Safe to call from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/model.h"
#include "tls/context.h"

namespace mqtls::tls {

// Every file a listener's TLS context is built from, in a fixed order, without duplicates:
// cert, key, client CA bundle and CRLs (unless client_auth is none; a CRL directory stands for
// the files in it now), ticket keys, OCSP staple. This is the set a reload watches and digests;
// it never holds a directory.
std::vector<std::string> contextFiles(const config::TlsSettings& settings);

// The directories whose entries a listener's context is built from (its and its sites' CRL
// directories, where client_auth is not none): a reload also watches each for entries added,
// replaced or removed.
std::vector<std::string> contextDirectories(const config::TlsSettings& settings);

// True when the key file and the first certificate of the cert file both parse and do NOT
// belong together: the state between the two writes of a certificate rotation. False when they
// match or when either cannot be read (that is an ordinary build error).
bool keyAndCertificateDisagree(const config::TlsSettings& settings);

class ContextStore {
 public:
  // Builds a listener's context from settings: the one call to TlsContext::build used at start
  // (startup_check) and on reload (rebuild). Problems go to `report`; null when it has errors.
  // rebuild() passes the current context's session resources, so sessions survive a reload.
  static TlsContextPtr build(const config::TlsSettings& settings, BuildReport& report,
                             const SessionResources& sessions = {});

  // `initial` must be non-null (a context made by build()).
  explicit ContextStore(TlsContextPtr initial) : current_(std::move(initial)) {}

  // The snapshot to use for a new connection; never null.
  TlsContextPtr current() const;
  // Publishes `next` (must be non-null) for connections accepted from now on, marking it with
  // the next reload generation (see TlsContext::reloadGeneration).
  void replace(TlsContextPtr next);
  // How many contexts were published after the initial one.
  std::uint64_t generation() const;
  // Builds a complete new context from `settings` and publishes it. On any error the current
  // snapshot stays in force, nothing is published, and the problems (each naming the setting
  // and file) are in `report`. Returns whether the new context was published.
  bool rebuild(const config::TlsSettings& settings, BuildReport& report);

 private:
  mutable std::mutex mutex_;
  TlsContextPtr current_;
  std::uint64_t generation_ = 0;
};

}  // namespace mqtls::tls

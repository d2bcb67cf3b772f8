// ContextStore: the one holder of each listener's current TLS snapshot, and the one place a
// listener's snapshot is built, at start and on every reload (ContextStore::build). A snapshot
// is one context per worker slot, each built from the same settings in its slot's OpenSSL
// library context (tls/library_contexts.h) and all sharing the listener's sessions.
// current(slot) returns the context new handshakes on that worker must use; rebuild() and
// replace() publish a new snapshot atomically for every worker. Connections keep the context
// they started with (a shared_ptr), so a replacement never disturbs them. Safe to call from
// any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/model.h"
#include "tls/context.h"
#include "tls/library_contexts.h"
#include "util/result.h"

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
  // (startup_check, then create() for the further worker slots) and on reload (rebuild).
  // Problems go to `report`; null when it has errors.
  // rebuild() passes the current context's session resources, so sessions survive a reload.
  // `slot`: see TlsContext::build.
  static TlsContextPtr build(const config::TlsSettings& settings, BuildReport& report,
                             const SessionResources& sessions = {}, const BuildSlot& slot = {});

  // A store of one slot: `initial` (non-null, made by build()) serves every worker.
  explicit ContextStore(TlsContextPtr initial);

  // A store with a slot per library context of `libraries` (which must outlive the store):
  // `initial` (built from `settings` in OpenSSL's default library context) serves slot 0, and
  // each further slot gets a context built from `settings` in its own library context, sharing
  // initial's sessions and verified-chain caches (a slot without a library context of its own
  // serves `initial`, and so does every slot when a server key is on a PKCS#11 token: one
  // token login per build). If the trust files changed since `initial` was built, every slot is
  // built again from them. Fails with every problem ("tls.<key>: message" lines) when one
  // cannot be built.
  static Result<std::unique_ptr<ContextStore>> create(TlsContextPtr initial,
                                                      const config::TlsSettings& settings,
                                                      const LibraryContexts& libraries);

  // The context to use for a new connection on worker `slot` (slots beyond the store's last
  // use its last one); never null.
  TlsContextPtr current(std::size_t slot = 0) const;
  // Publishes `next` (non-empty, no null; one context per slot, or one for all) for connections
  // accepted from now on, marking it with the next reload generation (see
  // TlsContext::reloadGeneration). An empty `next` or one holding null changes nothing.
  void replace(std::vector<TlsContextPtr> next);
  void replace(TlsContextPtr next) { replace(std::vector<TlsContextPtr>{std::move(next)}); }
  // How many contexts were published after the initial one.
  std::uint64_t generation() const;
  // Builds a complete new context for every slot from `settings` and publishes them together.
  // On any error the current snapshot stays in force, nothing is published, and the problems
  // (each naming the setting and file) are in `report`; so too when the slots' contexts do not
  // all trust the same (a CA or CRL file replaced while they were built). Returns whether the
  // new contexts were published.
  bool rebuild(const config::TlsSettings& settings, BuildReport& report);

 private:
  ContextStore(TlsContextPtr initial, const LibraryContexts* libraries);
  // The library context of `slot` (null: OpenSSL's default one).
  OSSL_LIB_CTX* libraryOf(std::size_t slot) const;
  // Where `slot`'s contexts for `settings` are built: its library context for files, its
  // handshake library context for the SSL_CTX (not for a key on a token), `sibling`.
  BuildSlot slotOf(std::size_t slot, const config::TlsSettings& settings,
                   const TlsContext* sibling = nullptr) const;
  // `first` (slot 0's context) followed by a context for each further slot of `slots`, each
  // sharing first's sessions and caches and checked to trust what `first` trusts; empty, with
  // the problems in `report`, if one cannot be built or trusts otherwise.
  std::vector<TlsContextPtr> buildFurtherSlots(const config::TlsSettings& settings,
                                               const TlsContextPtr& first, std::size_t slots,
                                               BuildReport& report) const;

  const LibraryContexts* libraries_ = nullptr;  // null: one slot, the default library context
  mutable std::mutex mutex_;
  std::vector<TlsContextPtr> current_;  // one per slot
  std::uint64_t generation_ = 0;
};

}  // namespace mqtls::tls

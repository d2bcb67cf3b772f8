// SessionStore: the server-side TLS session cache of one listener, outside any SSL_CTX, so that
// every context of the listener (the first and each reload) and every worker resume the same
// sessions. Bounded (least recently used sessions go first) and with a lifetime (a session's own
// creation time plus timeout, which the context caps at the client certificate's notAfter).
// Beside each session it keeps the trust generation it was last verified under; the context
// decides what a different generation means (tls/context.cc). Thread-safe: one mutex, taken
// only during handshakes.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <ctime>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/model.h"
#include "util/openssl_ptr.h"

namespace mqtls::tls {

using SslSessionPtr = std::unique_ptr<SSL_SESSION, OpenSslDeleter<SSL_SESSION_free>>;

// SHA-256 over everything that decides whether a client certificate is trusted (client CAs,
// CRLs, verify depth, CRL mode): equal generations trust the same certificates.
using TrustGeneration = std::array<unsigned char, 32>;

// The trust generation of a context: SHA-256 over client_auth, verify_depth, crl_check and
// every certificate and CRL (DER) in `ctx`'s trust store, i.e. over exactly what the context
// verifies client certificates with (not the files, which may change while it is built).
TrustGeneration trustGenerationOf(SSL_CTX* ctx, const config::TlsSettings& settings);

// True if `peer` verifies now against `ctx`'s client trust store, with its CRL flags and verify
// depth, as a client certificate ("ssl_client" purpose). Verifies the leaf with the store's
// certificates only: a chain the client sent is not kept in a session.
bool stillTrusted(SSL_CTX* ctx, X509* peer);

class SessionStore {
 public:
  // capacity >= 1 sessions.
  explicit SessionStore(std::size_t capacity);

  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  // Keeps a reference to `session` under its id, verified under `generation`, as the most
  // recently used; evicts the least recently used beyond capacity. A session without an id is
  // ignored.
  void insert(SSL_SESSION* session, const TrustGeneration& generation);

  struct Found {
    SslSessionPtr session;  // a new reference
    TrustGeneration generation;
  };
  // The live session stored under `id` (marked most recently used), or nullopt. A session
  // expired at `now` is removed and not returned.
  std::optional<Found> find(std::string_view id, std::time_t now);

  // Records that the session under `id` is now verified under `generation` (no-op if absent).
  void setGeneration(std::string_view id, const TrustGeneration& generation);

  // Removes the session under `id`, if any.
  void remove(std::string_view id);

  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }

  // The id of `session` as a key for the calls above.
  static std::string_view idOf(const SSL_SESSION* session);

 private:
  struct Entry {
    std::string id;
    SslSessionPtr session;
    TrustGeneration generation;
  };
  using Order = std::list<Entry>;  // most recently used first

  void eraseLocked(Order::iterator it);

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  Order order_;
  std::unordered_map<std::string_view, Order::iterator> index_;  // keys view Entry::id
};

}  // namespace mqtls::tls

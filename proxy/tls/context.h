// TlsContext: one immutable server-side TLS snapshot (SSL_CTX with certificate chain, key, client
// CA store, CRLs, versions, ciphers, ALPN, resumption policy). Built completely and checked before
// anyone can use it; never modified afterwards. Connections hold a shared_ptr to the snapshot they
// started with, so a later replacement (reload) never disturbs them. Resumed sessions live outside
// it, in its listener's SessionResources (session store or ticket keys), shared by every snapshot
// of that listener.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"
#include "tls/session_store.h"
#include "tls/ticket_keys.h"
#include "tls/verified_chains.h"
#include "util/openssl_ptr.h"
#include "util/result.h"

namespace mqtls::tls {

class TlsContext;
using TlsContextPtr = std::shared_ptr<const TlsContext>;

// One problem with a listener's TLS settings, tagged with the settings key it concerns: "cert",
// "key", "client_ca", "crl[<k>]" (k indexes TlsSettings::crl_files), "ciphers",
// "ciphersuites" or "groups". The message says what is wrong and, after "; ", how to fix it.
struct SettingProblem {
  std::string key;
  std::string message;
};

// Everything building a context found: errors (no context is built) and warnings (the context
// works, but something in it needs attention soon, e.g. a CRL past its nextUpdate).
struct BuildReport {
  std::vector<SettingProblem> errors;
  std::vector<SettingProblem> warnings;
};

// The resumption state of one listener: made once (SessionResources::create) and passed to
// every build of that listener's contexts, at start and on each reload, so sessions survive
// reloads and are shared by all workers. A member left empty is made privately by build().
struct SessionResources {
  std::shared_ptr<SessionStore> store;  // stateful mode
  std::shared_ptr<TicketKeys> keys;     // tickets mode

  // What `settings` needs: a store of session_cache_size (stateful), or ticket keys read from
  // ticket_key_file or made in memory (tickets); nothing when resumption is off. Fails (message
  // names the file and says how to fix it) when the key file cannot be used.
  static Result<SessionResources> create(const config::TlsSettings& settings);
  // False when `settings` need other resources (mode, cache size, key file, or the rotation or
  // lifetime of in-memory ticket keys changed): a reload must then create() new ones (sessions
  // do not carry over).
  bool fits(const config::TlsSettings& settings) const;
  // The key files a reload should watch (tickets mode with ticket_key_file; else empty).
  std::vector<std::string> ticketKeyFiles() const;
  // Re-reads the ticket key file (nothing to do for in-memory keys, which rotate on their own);
  // the old keys stay on failure. build() calls it for the resources it is given.
  Status reloadTicketKeys() const;
};

// Where a context is built: the OpenSSL library context its files (certificates, keys, CRLs)
// are read in (null: OpenSSL's default one); the library context its SSL_CTX is made in, where
// handshakes parse what clients present (null: `library`; see tls/handshake_library.h); and, for
// a further worker slot of a listener's snapshot, the slot-0 context built from the same
// settings whose caches of verified client chains (its sites' too) it shares, so that a device
// verified on one worker is a cache hit on every worker.
struct BuildSlot {
  OSSL_LIB_CTX* library = nullptr;
  OSSL_LIB_CTX* handshakes = nullptr;
  const TlsContext* sibling = nullptr;
};

class TlsContext {
 public:
  // Builds and checks a context from settings. This is the one place that checks the TLS
  // material: files readable and holding what their key promises; the key matches the leaf;
  // the leaf is within its validity; the chain is in order (leaf first, each certificate
  // followed by its issuer) and every certificate is accepted by OpenSSL's security level;
  // CA and CRL files parse; CRLs are current (a warning); cipher, ciphersuite and group lists
  // are accepted. Every problem found goes to `report`; returns the context, or nullptr when
  // report.errors is not empty. Nothing partially built escapes. Sessions are kept in (or
  // tickets encrypted with) `sessions`, its key file read again; if it does not fit `settings`
  // (see SessionResources::fits), resources are made for this context alone. An unusable ticket
  // key file is an error under "session.ticket_key_file".
  //
  // The certificates, keys and CRLs of the context are made in slot.library, its SSL_CTX in
  // slot.handshakes (or slot.library); both must outlive the context and every SSL and session
  // made from it. Handshakes on
  // contexts of different library contexts do not share OpenSSL's algorithm and decoder tables,
  // nor their locks, for what the context parses itself (tls/library_contexts.h says what still
  // runs in the default one). slot.sibling (built from the same settings) need not outlive the
  // context: its caches are shared, not borrowed.
  static TlsContextPtr build(const config::TlsSettings& settings, BuildReport& report,
                             const SessionResources& sessions = {}, const BuildSlot& slot = {});

  // As build(), with the errors as one message of "tls.<key>: message" lines; warnings are
  // dropped.
  static Result<TlsContextPtr> create(const config::TlsSettings& settings,
                                      const SessionResources& sessions = {});

  // A new server-side SSL bound to this context, or nullptr on allocation failure.
  SslPtr newSsl() const;

  SSL_CTX* raw() const { return ctx_.get(); }
  // The OpenSSL library context it was built in (null: the default one).
  OSSL_LIB_CTX* library() const { return library_; }
  // The OpenSSL library context its SSL_CTX was made in (null: the default one).
  OSSL_LIB_CTX* handshakeLibrary() const { return handshakes_; }
  const config::TlsSettings& settings() const { return settings_; }
  const SessionResources& sessions() const { return sessions_; }
  // What this context trusts (trustGenerationOf): a session verified under another
  // generation is re-verified (stateful) or refused (tickets) before it resumes.
  const TrustGeneration& trustGeneration() const { return generation_; }
  // True when this context and `other` trust the same: equal trust generations, their SNI
  // sites' too, pairwise.
  bool sameTrustAs(const TlsContext& other) const;
  // The context serving a client that asked for `host_name` (SNI): the site with that exact name,
  // else the site whose wildcard matches its first label, else this one. Case-insensitive; a
  // trailing dot is ignored.
  const TlsContext& siteFor(std::string_view host_name) const;
  // For a site's context: the identity policy that replaces the configuration's, if any.
  const config::IdentityPolicy* identityPolicy() const { return policy_ ? &*policy_ : nullptr; }
  // How many times its listener's context had been replaced when this one was published (0: the
  // context the process started with). Set once by ContextStore before publishing; for logs.
  std::uint64_t reloadGeneration() const {
    return reload_generation_.load(std::memory_order_relaxed);
  }
  void setReloadGeneration(std::uint64_t generation) const {
    reload_generation_.store(generation, std::memory_order_relaxed);
  }

  // This context was replaced by a newer one: drops what it caches for new handshakes (the
  // verified chains, its sites' too). Connections holding it are not affected.
  void retire() const;

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  // Unbinds the session callbacks from this object: an SSL that outlived it (it should not)
  // then finds no session state instead of a dangling one.
  ~TlsContext();

 private:
  TlsContext(SslCtxPtr ctx, config::TlsSettings settings, std::vector<std::uint8_t> alpn_wire,
             SessionResources sessions, const BuildSlot& slot);
  // One SSL_CTX from `settings` (its sites ignored), with `sessions` already resolved; null when
  // `report` gained errors.
  static std::shared_ptr<TlsContext> buildOne(const config::TlsSettings& settings,
                                              BuildReport& report, const SessionResources& sessions,
                                              const BuildSlot& slot);
  // Builds settings.sites into sites_ (keys of their problems prefixed "sni[<i>].") and, if
  // there are any, installs the ClientHello callback that moves a connection to its site. Site
  // i shares its caches with site i of `sibling` (if not null).
  void buildSites(BuildReport& report, const TlsContext* sibling);
  // ClientHello callback (sites.cc): before resumption or certificate choice, moves `ssl` to the
  // SSL_CTX of the site its SNI names, with that site's verification.
  static int chooseSite(SSL* ssl, int* alert, void* arg);
  static int selectAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                        const unsigned char* in, unsigned int inlen, void* arg);

  SslCtxPtr ctx_;
  OSSL_LIB_CTX* library_;     // not owned
  OSSL_LIB_CTX* handshakes_;  // not owned
  config::TlsSettings settings_;
  std::vector<std::uint8_t> alpn_wire_;  // server's ALPN list in wire format
  SessionResources sessions_;
  TrustGeneration generation_;
  std::optional<config::IdentityPolicy> policy_;                 // a site's own identity policy
  std::vector<std::shared_ptr<const TlsContext>> sites_;         // settings_.sites, in order
  std::vector<std::pair<std::string, std::size_t>> site_names_;  // name -> index in sites_, sorted
  mutable std::atomic<std::uint64_t> reload_generation_{0};      // see reloadGeneration()
  // Client chains verified under this context's trust (null: verify_cache_size 0 or no client
  // authentication), shared with the other worker slots' contexts of the same snapshot; the
  // SSL_CTX's cert verify callback points at it.
  std::shared_ptr<VerifiedChains> verified_chains_;
};

// Human-readable TLS facts of an established connection, for the access log.
struct SessionFacts {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_128_GCM_SHA256"
  bool resumed = false;
  std::string alpn;  // negotiated protocol or empty
};
SessionFacts describeSession(SSL* ssl);

// True when `ssl` has no peer certificate, or its leaf is within notBefore..notAfter now. Cheap
// (no allocation, no verification): meant for every resumed handshake and long-lived connection.
bool peerCertificateCurrent(SSL* ssl);

// The settings of the site serving `ssl` (the listener's, or the SNI site the client named), or
// null if `ssl` is not bound to a TlsContext.
const config::TlsSettings* siteSettings(SSL* ssl);

// The identity policy of the SNI site serving `ssl`, or null: the configuration's applies.
const config::IdentityPolicy* sitePolicy(SSL* ssl);

// Removes `ssl`'s session from its listener's session store, so it can never be resumed (a
// stateless ticket already sent cannot be taken back: resuming it runs admission again). Safe
// with any SSL (null, before or after a failed handshake, without a session).
void forgetSession(SSL* ssl);

}  // namespace mqtls::tls

namespace mqtls::tls {

// Why a handshake failed: a short metric label and a human detail for the log.
struct HandshakeFailure {
  // no_certificate, unknown_ca, expired, not_yet_valid, revoked, bad_certificate (any other
  // verification failure), crl_expired, protocol_version, no_shared_cipher, not_tls, eof, error
  std::string reason;
  std::string detail;
};

// Classifies a failed server handshake from the SSL's verify result and the OpenSSL error codes
// collected for it (oldest first; empty if the peer just closed).
HandshakeFailure classifyHandshakeFailure(SSL* ssl, const std::vector<unsigned long>& errors);

}  // namespace mqtls::tls

#include "tls/build_steps.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "tls/peer_identity.h"

namespace mqtls::tls {
namespace detail {
namespace {

constexpr unsigned char kSessionIdContext[] = "mqtls";

const TlsContext* contextOf(SSL_CTX* ctx) {
  return ctx != nullptr ? static_cast<const TlsContext*>(SSL_CTX_get_app_data(ctx)) : nullptr;
}

// Caps `session`'s lifetime at its client certificate's notAfter, so no session resumes past
// it. False if the certificate has already expired or its notAfter cannot be read: the session
// must not be kept.
bool capSessionLifetime(SSL_SESSION* session) {
  X509* peer = SSL_SESSION_get0_peer(session);
  if (peer == nullptr) {
    return true;
  }
  std::time_t not_after = 0;
  const long created = SSL_SESSION_get_time(session);
  if (!toEpoch(X509_get0_notAfter(peer), not_after) || not_after <= created) {
    return false;
  }
  const long remaining = static_cast<long>(not_after - created);
  if (remaining < SSL_SESSION_get_timeout(session)) {
    SSL_SESSION_set_timeout(session, remaining);
  }
  return true;
}

// session.lifetime counts from the client's full handshake, not from the last renewal: a TLS 1.3
// client gets a new session (ticket) at every resumption, which OpenSSL dates "now", so without
// this a device reconnecting often enough would never be verified in full again (and an OCSP
// revocation would never be seen). The full handshake's time travels with every session renewed
// from it: in an ex_data slot of the SSL_SESSION (the time itself, no allocation; OpenSSL copies
// it when it copies the session for a new ticket), and in the stamp of a stateless ticket.
int authenticatedAtIndex() {
  static const int index = SSL_SESSION_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::time_t authenticatedAt(SSL_SESSION* session) {
  return static_cast<std::time_t>(
      reinterpret_cast<std::intptr_t>(SSL_SESSION_get_ex_data(session, authenticatedAtIndex())));
}

// False if the slot could not be set (no index, no memory): the session must not be kept.
bool setAuthenticatedAt(SSL_SESSION* session, std::time_t when) {
  return authenticatedAtIndex() >= 0 &&
         SSL_SESSION_set_ex_data(session, authenticatedAtIndex(),
                                 reinterpret_cast<void*>(static_cast<std::intptr_t>(when))) == 1;
}

// Caps `session`'s lifetime so that it ends `lifetime` seconds after `authenticated`. False if
// that moment has passed: the session must not be kept.
bool capAtAuthentication(SSL_SESSION* session, std::time_t authenticated, long lifetime) {
  const long remaining =
      static_cast<long>(authenticated + lifetime - SSL_SESSION_get_time(session));
  if (remaining <= 0) {
    return false;
  }
  if (remaining < SSL_SESSION_get_timeout(session)) {
    SSL_SESSION_set_timeout(session, remaining);
  }
  return true;
}

// Stateful: a new session enters the listener's store under this context's trust generation,
// its lifetime capped at the certificate's notAfter and at session.lifetime after the full
// handshake it descends from. Returns 0: OpenSSL keeps its own reference.
int storeSession(SSL* ssl, SSL_SESSION* session) {
  const TlsContext* self = contextOf(SSL_get_SSL_CTX(ssl));
  if (self == nullptr || !self->sessions().store) {
    return 0;
  }
  std::time_t authenticated = authenticatedAt(session);
  const bool renewal = authenticated != 0;  // a TLS 1.3 resumption's renewed session
  if (!renewal) {
    authenticated = static_cast<std::time_t>(SSL_SESSION_get_time(session));
    if (!setAuthenticatedAt(session, authenticated)) {
      return 0;  // without it a renewal would count as a full handshake: not resumable
    }
  }
  // The client identity travels with the session from here, so that resuming needs no
  // extraction: always for TLS 1.2, which resumes this very object (its connection takes it
  // too), and for TLS 1.3 from the first renewal on (a session resumed once is likely resumed
  // again). The price is the identity's memory (about 1 KiB) for as long as the session lives,
  // where a connection alone drops its identity once admitted: measured on idle TLS 1.3
  // connections, which is why a TLS 1.3 full handshake's session keeps none.
  if (renewal || SSL_SESSION_get_protocol_version(session) == TLS1_2_VERSION) {
    keepPeerIdentity(session);
  }
  if (capSessionLifetime(session) &&
      capAtAuthentication(session, authenticated, SSL_CTX_get_timeout(SSL_get_SSL_CTX(ssl)))) {
    self->sessions().store->insert(session, self->trustGeneration());
  }
  return 0;
}

// Stateful: the stored session `id` names, as a new reference (*copy = 0), or null. A session
// verified under another trust generation (a reload changed the CAs or CRLs) resumes only if its
// client certificate still verifies against this context's trust store; otherwise it is dropped
// and the client makes a full handshake.
SSL_SESSION* lookupSession(SSL* ssl, const unsigned char* id, int length, int* copy) {
  *copy = 0;
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  const TlsContext* self = contextOf(ctx);
  if (self == nullptr || !self->sessions().store || length <= 0) {
    return nullptr;
  }
  SessionStore& store = *self->sessions().store;
  const std::string_view key(reinterpret_cast<const char*>(id), static_cast<std::size_t>(length));
  const std::time_t now = std::time(nullptr);
  auto found = store.find(key, now);
  if (!found) {
    return nullptr;
  }
  // session.lifetime after the full handshake, as this context counts it now (a reload may have
  // shortened it).
  const std::time_t authenticated = authenticatedAt(found->session.get());
  if (authenticated == 0 || authenticated + SSL_CTX_get_timeout(ctx) <= now) {
    store.remove(key);
    return nullptr;
  }
  if (found->generation != self->trustGeneration()) {
    X509* peer = SSL_SESSION_get0_peer(found->session.get());
    if (peer != nullptr && !stillTrusted(ctx, peer)) {
      store.remove(key);
      return nullptr;
    }
    store.setGeneration(key, self->trustGeneration());
  }
  return found->session.release();
}

// Stateful: OpenSSL gave up on a session (forgotten, timed out, used up).
void dropSession(SSL_CTX* ctx, SSL_SESSION* session) {
  const TlsContext* self = contextOf(ctx);
  if (self != nullptr && self->sessions().store) {
    self->sessions().store->remove(SessionStore::idOf(session));
  }
}

// Tickets: what a ticket carries besides the session: the trust generation it was issued under,
// the client certificate's notAfter (big-endian seconds; 0 without a certificate) and the time
// of the full handshake the session descends from (big-endian seconds).
constexpr std::size_t kNotAfterAt = sizeof(TrustGeneration);
constexpr std::size_t kAuthenticatedAt = kNotAfterAt + 8;
constexpr std::size_t kTicketStampSize = kAuthenticatedAt + 8;
// Earlier versions stamped without the full handshake's time: their tickets still resume,
// counted from the ticket's own issue.
constexpr std::size_t kTicketStampSizeWithoutAuthentication = kAuthenticatedAt;

void putSeconds(unsigned char* at, std::time_t value) {
  for (std::size_t i = 0; i < 8; ++i) {
    at[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(value) >> (56 - 8 * i));
  }
}

std::time_t getSeconds(const unsigned char* at) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    value = (value << 8) | at[i];
  }
  return static_cast<std::time_t>(value);
}

// The full-handshake time `session` carries in its stamp (the time of its own issue for a stamp
// of an earlier version), or 0 when it has no stamp: the session of a full handshake.
std::time_t stampedAuthentication(SSL_SESSION* session) {
  void* data = nullptr;
  size_t size = 0;
  if (SSL_SESSION_get0_ticket_appdata(session, &data, &size) != 1) {
    return 0;
  }
  if (size == kTicketStampSize) {
    return getSeconds(static_cast<const unsigned char*>(data) + kAuthenticatedAt);
  }
  return size == kTicketStampSizeWithoutAuthentication
             ? static_cast<std::time_t>(SSL_SESSION_get_time(session))
             : 0;
}

// Tickets: stamps the ticket about to be issued, and caps its lifetime as for stored sessions.
int stampTicket(SSL* ssl, void*) {
  const TlsContext* self = contextOf(SSL_get_SSL_CTX(ssl));
  SSL_SESSION* session = SSL_get0_session(ssl);
  if (self == nullptr || session == nullptr) {
    return 0;
  }
  std::array<unsigned char, kTicketStampSize> stamp{};
  std::copy(self->trustGeneration().begin(), self->trustGeneration().end(), stamp.begin());
  std::time_t not_after = 0;
  if (X509* peer = SSL_SESSION_get0_peer(session); peer != nullptr) {
    capSessionLifetime(session);
    toEpoch(X509_get0_notAfter(peer), not_after);
  }
  std::time_t authenticated = stampedAuthentication(session);
  if (authenticated == 0) {
    authenticated = static_cast<std::time_t>(SSL_SESSION_get_time(session));
  }
  if (!capAtAuthentication(session, authenticated, SSL_CTX_get_timeout(SSL_get_SSL_CTX(ssl)))) {
    SSL_SESSION_set_timeout(session, 1);  // issued anyway; checkTicket refuses it
  }
  putSeconds(stamp.data() + kNotAfterAt, not_after);
  putSeconds(stamp.data() + kAuthenticatedAt, authenticated);
  return SSL_SESSION_set1_ticket_appdata(session, stamp.data(), stamp.size());
}

// Tickets: a ticket that decrypted resumes only while its client certificate has not expired and
// session.lifetime has not passed since the full handshake it descends from, and, when it was
// issued under another trust generation (another replica's or an older CA/CRL
// set), only if that certificate still verifies against this context's trust store (then a
// ticket of the current generation replaces it). Otherwise a full handshake follows.
SSL_TICKET_RETURN checkTicket(SSL* ssl, SSL_SESSION* session, const unsigned char*, size_t,
                              SSL_TICKET_STATUS status, void*) {
  if (status == SSL_TICKET_FATAL_ERR_MALLOC || status == SSL_TICKET_FATAL_ERR_OTHER) {
    return SSL_TICKET_RETURN_ABORT;
  }
  const TlsContext* self = contextOf(SSL_get_SSL_CTX(ssl));
  void* data = nullptr;
  size_t size = 0;
  if ((status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW) || self == nullptr ||
      SSL_SESSION_get0_ticket_appdata(session, &data, &size) != 1 ||
      (size != kTicketStampSize && size != kTicketStampSizeWithoutAuthentication)) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  const auto* stamp = static_cast<const unsigned char*>(data);
  const std::time_t now = std::time(nullptr);
  X509* peer = SSL_SESSION_get0_peer(session);
  if (peer != nullptr && getSeconds(stamp + kNotAfterAt) <= now) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  if (stampedAuthentication(session) + SSL_CTX_get_timeout(SSL_get_SSL_CTX(ssl)) <= now) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;  // session.lifetime after the full handshake is over
  }
  const TrustGeneration& trusted = self->trustGeneration();
  if (!std::equal(trusted.begin(), trusted.end(), stamp)) {
    const bool verified = peer == nullptr || stillTrusted(SSL_get_SSL_CTX(ssl), peer);
    return verified ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  // A TLS 1.3 client uses a ticket once: without a new ticket after this resumption, its next
  // reconnect would be a full handshake. A TLS 1.2 client keeps its ticket.
  const bool renew = status == SSL_TICKET_SUCCESS_RENEW || SSL_version(ssl) >= TLS1_3_VERSION;
  return renew ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_USE;
}

// Every SNI host name is accepted here (a listener's sites are chosen earlier, from the
// ClientHello). Accepting it is what makes OpenSSL keep the name in a TLS 1.2 session, so that a
// resumed TLS 1.2 connection still reports the name it was made for.
int acceptServerName(SSL*, int*, void*) {
  return SSL_TLSEXT_ERR_OK;
}

int ticketCrypt(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac, int enc) {
  const TlsContext* self = contextOf(SSL_get_SSL_CTX(ssl));
  if (self == nullptr || !self->sessions().keys) {
    return enc == 1 ? -1 : 0;
  }
  return self->sessions().keys->crypt(name, iv, cipher, mac, enc, std::time(nullptr));
}

}  // namespace

bool toEpoch(const ASN1_TIME* time, std::time_t& out) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return false;
  }
  out = timegm(&tm);
  return true;
}

// Resumption. stateful (measured cheapest here): TLS 1.3 stateful tickets and TLS 1.2 session
// IDs, the sessions kept in the listener's SessionStore rather than in this SSL_CTX, so they
// survive reloads. tickets: stateless tickets under the listener's TicketKeys, for replicas.
// Early data stays off: a CONNECT is not replay-safe.
void installSessionPolicy(SSL_CTX* ctx, const config::TlsSettings& settings) {
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_tlsext_servername_callback(ctx, &acceptServerName);
  SSL_CTX_set_max_early_data(ctx, 0);
  SSL_CTX_set_recv_max_early_data(ctx, 0);
  SSL_CTX_set_timeout(ctx, static_cast<long>(settings.session_timeout.count() / 1000));
  if (settings.session_cache_size == 0) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return;
  }
  SSL_CTX_set_num_tickets(ctx, 1);
  if (settings.session_mode == config::SessionMode::Tickets) {
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &ticketCrypt);
    SSL_CTX_set_session_ticket_cb(ctx, &stampTicket, &checkTicket, nullptr);
    return;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, &storeSession);
  SSL_CTX_sess_set_get_cb(ctx, &lookupSession);
  SSL_CTX_sess_set_remove_cb(ctx, &dropSession);
}

SessionResources resourcesFor(const config::TlsSettings& settings, const SessionResources& given,
                              BuildReport& report) {
  if (given.fits(settings)) {
    if (auto reloaded = given.reloadTicketKeys(); !reloaded) {
      addError(report, "session.ticket_key_file", reloaded.error().message);
    }
    return given;
  }
  auto made = SessionResources::create(settings);
  if (!made) {
    addError(report, "session.ticket_key_file", made.error().message);
    return {};
  }
  return std::move(*made);
}

}  // namespace detail

Result<SessionResources> SessionResources::create(const config::TlsSettings& settings) {
  SessionResources made;
  if (settings.session_cache_size == 0) {
    return made;
  }
  if (settings.session_mode == config::SessionMode::Stateful) {
    made.store = std::make_shared<SessionStore>(settings.session_cache_size);
    return made;
  }
  if (settings.ticket_key_file.empty()) {
    made.keys = std::make_shared<TicketKeys>(
        std::chrono::duration_cast<std::chrono::seconds>(settings.ticket_rotation),
        std::chrono::duration_cast<std::chrono::seconds>(settings.session_timeout));
    return made;
  }
  auto keys = TicketKeys::fromFile(settings.ticket_key_file);
  if (!keys) {
    return keys.error();
  }
  made.keys = std::move(*keys);
  return made;
}

bool SessionResources::fits(const config::TlsSettings& settings) const {
  if (settings.session_cache_size == 0) {
    return true;
  }
  if (settings.session_mode == config::SessionMode::Stateful) {
    return store && store->capacity() == settings.session_cache_size;
  }
  if (!keys || keys->file() != settings.ticket_key_file) {
    return false;
  }
  // In-memory keys are made for a rotation and a lifetime: new values need new keys.
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  return !settings.ticket_key_file.empty() ||
         (keys->rotation() == duration_cast<seconds>(settings.ticket_rotation) &&
          keys->lifetime() == duration_cast<seconds>(settings.session_timeout));
}

std::vector<std::string> SessionResources::ticketKeyFiles() const {
  if (keys && !keys->file().empty()) {
    return {keys->file()};
  }
  return {};
}

Status SessionResources::reloadTicketKeys() const {
  return keys && !keys->file().empty() ? keys->reload() : Status::success();
}

}  // namespace mqtls::tls

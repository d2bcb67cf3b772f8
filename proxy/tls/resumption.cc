#include "tls/build_steps.h"

#include <algorithm>
#include <array>

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

// Stateful: a new session enters the listener's store under this context's trust generation.
// Returns 0: OpenSSL keeps its own reference.
int storeSession(SSL* ssl, SSL_SESSION* session) {
  const TlsContext* self = contextOf(SSL_get_SSL_CTX(ssl));
  if (self != nullptr && self->sessions().store && capSessionLifetime(session)) {
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
  auto found = store.find(key, std::time(nullptr));
  if (!found) {
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

// Tickets: what a ticket carries besides the session: the trust generation it was issued under
// and the client certificate's notAfter (big-endian seconds; 0 without a certificate).
constexpr std::size_t kTicketStampSize = sizeof(TrustGeneration) + 8;

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
  for (std::size_t i = 0; i < 8; ++i) {
    stamp[sizeof(TrustGeneration) + i] =
        static_cast<unsigned char>(static_cast<std::uint64_t>(not_after) >> (56 - 8 * i));
  }
  return SSL_SESSION_set1_ticket_appdata(session, stamp.data(), stamp.size());
}

// Tickets: a ticket that decrypted resumes only while its client certificate has not expired,
// and, when it was issued under another trust generation (another replica's or an older CA/CRL
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
      SSL_SESSION_get0_ticket_appdata(session, &data, &size) != 1 || size != kTicketStampSize) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  const auto* stamp = static_cast<const unsigned char*>(data);
  std::uint64_t not_after = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    not_after = (not_after << 8) | stamp[sizeof(TrustGeneration) + i];
  }
  X509* peer = SSL_SESSION_get0_peer(session);
  if (peer != nullptr && static_cast<std::time_t>(not_after) <= std::time(nullptr)) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;
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

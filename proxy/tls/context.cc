#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

#include "tls/hardware_key.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace {

constexpr const char* kDefaultTls12Ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20";
constexpr unsigned char kSessionIdContext[] = "mqtls";

int protocolVersion(config::TlsVersion version) {
  return version == config::TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

void addError(BuildReport& report, std::string key, std::string message) {
  report.errors.push_back(SettingProblem{std::move(key), std::move(message)});
}

// "'subject' in 'file'", for messages about one certificate of a file.
std::string certificateIn(X509* cert, const std::string& file) {
  return "'" + pem::subjectLine(cert) + "' in '" + file + "'";
}

// The chain order: certificate i+1 issued certificate i.
void checkChainOrder(const std::vector<X509Ptr>& chain, const std::string& file,
                     BuildReport& report) {
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
    if (X509_check_issued(chain[i + 1].get(), chain[i].get()) != X509_V_OK) {
      addError(report, "cert",
               "certificate " + std::to_string(i + 2) + " of '" + file +
                   "' did not issue certificate " + std::to_string(i + 1) +
                   "; order the chain leaf first, each certificate followed by its issuer");
    }
  }
}

// Installs leaf and chain; OpenSSL refuses a certificate its security level rejects.
void installChain(SSL_CTX* ctx, const std::vector<X509Ptr>& chain, const std::string& file,
                  BuildReport& report) {
  if (SSL_CTX_use_certificate(ctx, chain.front().get()) != 1) {
    addError(report, "cert",
             "OpenSSL refuses certificate " + certificateIn(chain.front().get(), file) + " (" +
                 takeOpenSslError() +
                 "); issue it with a stronger key or signature (e.g. EC P-256 or RSA 2048+, "
                 "SHA-256)");
  }
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
      addError(report, "cert",
               "certificate " + std::to_string(i + 1) + " " + certificateIn(chain[i].get(), file) +
                   " cannot be added to the chain (" + takeOpenSslError() +
                   "); replace it with one OpenSSL accepts (e.g. EC P-256 or RSA 2048+, "
                   "SHA-256) or remove it");
    }
  }
}

// Installs the server chain and key; checks key/cert match, validity and chain order.
void installIdentity(SSL_CTX* ctx, const config::TlsSettings& settings, BuildReport& report) {
  auto chain = pem::readCertificates(settings.cert_file);
  const bool on_token = isPkcs11Uri(settings.key_file);  // the key stays on a PKCS#11 token
  auto key = on_token ? loadHardwareKey(settings.key_file) : pem::readPrivateKey(settings.key_file);
  if (!chain) {
    addError(
        report, "cert",
        chain.error().message + "; point 'cert' at the server certificate chain (PEM, leaf first)");
  }
  if (!key) {
    addError(
        report, "key",
        key.error().message + (on_token ? "" : "; point 'key' at the server's private key (PEM)"));
  }
  if (!chain) {
    return;
  }
  X509* leaf = chain->front().get();
  if (auto valid = pem::checkValidity(leaf, std::time(nullptr)); !valid) {
    addError(report, "cert",
             valid.error().message + " ('" + settings.cert_file +
                 "'); renew it or point 'cert' at a currently valid certificate");
  }
  checkChainOrder(*chain, settings.cert_file, report);
  installChain(ctx, *chain, settings.cert_file, report);
  if (!key) {
    return;
  }
  if (auto match = pem::checkKeyMatchesCertificate(leaf, key->get()); !match) {
    addError(report, "key",
             match.error().message + " (first certificate of '" + settings.cert_file +
                 "'); use the key the certificate was issued for");
  } else if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
    addError(report, "key",
             "OpenSSL refuses the private key in '" + redactPkcs11Uri(settings.key_file) + "' (" +
                 takeOpenSslError() + "); use an EC P-256 or RSA 2048+ key");
  }
}

// The date an ASN1_TIME names, as "2021-01-01T00:00:00Z" (empty if it cannot be read).
std::string isoDate(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return {};
  }
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Adds the CRLs of settings.crl_files[index] to `store`; warns about one past its nextUpdate.
void installCrlFile(X509_STORE* store, const config::TlsSettings& settings, std::size_t index,
                    BuildReport& report) {
  const std::string& file = settings.crl_files[index];
  const std::string key = "crl[" + std::to_string(index) + "]";
  auto crls = pem::readCrls(file);
  if (!crls) {
    addError(report, key, crls.error().message + "; point 'crl' at PEM CRLs from the client CAs");
    return;
  }
  for (auto& crl : *crls) {
    X509_STORE_add_crl(store, crl.get());
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
    if (next != nullptr && X509_cmp_current_time(next) < 0) {
      report.warnings.push_back(SettingProblem{
          key, "the CRL of '" + pem::issuerLine(crl.get()) + "' in '" + file +
                   "' is past its nextUpdate (" + isoDate(next) +
                   "): client certificates it covers are refused (CRL has expired) until it "
                   "is replaced; fetch a current CRL from that CA"});
    }
  }
  ERR_clear_error();
}

// Trust store for client certificates: CA bundle, CRLs and the verification mode.
void installClientVerification(SSL_CTX* ctx, const config::TlsSettings& settings,
                               BuildReport& report) {
  if (settings.client_auth == config::ClientAuth::None) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return;
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (auto cas = pem::readCertificates(settings.client_ca_file); !cas) {
    addError(report, "client_ca",
             cas.error().message +
                 "; point 'client_ca' at the CA certificates that issue client certificates");
  } else {
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (auto& ca : *cas) {
      X509_STORE_add_cert(store, ca.get());
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca.get())));
    }
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  for (std::size_t i = 0; i < settings.crl_files.size(); ++i) {
    installCrlFile(store, settings, i, report);
  }
  if (!settings.crl_files.empty()) {
    unsigned long flags = X509_V_FLAG_CRL_CHECK;
    if (settings.crl_check == config::CrlCheck::Chain) {
      flags |= X509_V_FLAG_CRL_CHECK_ALL;
    }
    X509_STORE_set_flags(store, flags);
  }
  int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
  if (settings.client_auth == config::ClientAuth::Required) {
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(ctx, mode, nullptr);
  SSL_CTX_set_verify_depth(ctx, settings.verify_depth);
}

// Applies one algorithm list; an error names the key when OpenSSL accepts nothing in it.
template <typename Apply>
void applyList(SSL_CTX* ctx, const char* key, const std::string& value, Apply apply,
               BuildReport& report) {
  if (apply(ctx, value.c_str()) != 1) {
    addError(report, key,
             "OpenSSL accepts nothing in '" + value + "' (" + takeOpenSslError() +
                 "); check the names, or use \"\" for the default");
  }
  ERR_clear_error();
}

void installProtocolPolicy(SSL_CTX* ctx, const config::TlsSettings& settings, BuildReport& report) {
  SSL_CTX_set_min_proto_version(ctx, protocolVersion(settings.min_version));
  SSL_CTX_set_max_proto_version(ctx, protocolVersion(settings.max_version));
  // A client that closes TCP without close_notify ends its session normally (MQTT is framed,
  // so truncation cannot go unnoticed); otherwise OpenSSL would drop the session from the cache.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  applyList(ctx, "ciphers", settings.ciphers.empty() ? kDefaultTls12Ciphers : settings.ciphers,
            SSL_CTX_set_cipher_list, report);
  if (!settings.ciphersuites.empty()) {
    applyList(ctx, "ciphersuites", settings.ciphersuites, SSL_CTX_set_ciphersuites, report);
  }
  if (!settings.groups.empty()) {
    applyList(
        ctx, "groups", settings.groups,
        [](SSL_CTX* c, const char* list) {
          return static_cast<int>(SSL_CTX_set1_groups_list(c, list));
        },
        report);
  }
}

// Seconds since the epoch of an ASN1_TIME; false if it cannot be read.
bool toEpoch(const ASN1_TIME* time, std::time_t& out) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return false;
  }
  out = timegm(&tm);
  return true;
}

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
  return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
}

int ticketCrypt(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac, int enc) {
  const TlsContext* self = contextOf(SSL_get_SSL_CTX(ssl));
  if (self == nullptr || !self->sessions().keys) {
    return enc == 1 ? -1 : 0;
  }
  return self->sessions().keys->crypt(name, iv, cipher, mac, enc, std::time(nullptr));
}

// Resumption. stateful (measured cheapest here): TLS 1.3 stateful tickets and TLS 1.2 session
// IDs, the sessions kept in the listener's SessionStore rather than in this SSL_CTX, so they
// survive reloads. tickets: stateless tickets under the listener's TicketKeys, for replicas.
// Early data stays off: a CONNECT is not replay-safe.
void installSessionPolicy(SSL_CTX* ctx, const config::TlsSettings& settings) {
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
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

// ALPN protocol list in wire format (length-prefixed names).
std::vector<std::uint8_t> alpnWire(const std::vector<std::string>& protocols) {
  std::vector<std::uint8_t> wire;
  for (const auto& name : protocols) {
    wire.push_back(static_cast<std::uint8_t>(name.size()));
    wire.insert(wire.end(), name.begin(), name.end());
  }
  return wire;
}

// `given` if it fits `settings` (its ticket key file read again, so a reload picks up new keys),
// else resources made for them; errors go to `report`.
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

}  // namespace

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
  return keys && keys->file() == settings.ticket_key_file;
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

TlsContextPtr TlsContext::build(const config::TlsSettings& settings, BuildReport& report,
                                const SessionResources& sessions) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    addError(report, "cert",
             "cannot create a TLS context (" + takeOpenSslError() + "); check memory limits");
    return nullptr;
  }
  const std::size_t errors_before = report.errors.size();
  installProtocolPolicy(ctx.get(), settings, report);
  installIdentity(ctx.get(), settings, report);
  installClientVerification(ctx.get(), settings, report);
  installSessionPolicy(ctx.get(), settings);
  SessionResources resources = resourcesFor(settings, sessions, report);
  ERR_clear_error();
  if (report.errors.size() != errors_before) {
    return nullptr;
  }
  auto wire = alpnWire(settings.alpn);
  TlsContextPtr context(
      new TlsContext(std::move(ctx), settings, std::move(wire), std::move(resources)));
  // The session callbacks find their context here; it outlives its SSL_CTX's every use.
  SSL_CTX_set_app_data(context->raw(), const_cast<TlsContext*>(context.get()));
  if (!context->alpn_wire_.empty()) {
    SSL_CTX_set_alpn_select_cb(context->raw(), &TlsContext::selectAlpn,
                               const_cast<TlsContext*>(context.get()));
  }
  return context;
}

Result<TlsContextPtr> TlsContext::create(const config::TlsSettings& settings,
                                         const SessionResources& sessions) {
  BuildReport report;
  TlsContextPtr context = build(settings, report, sessions);
  if (context) {
    return context;
  }
  std::string text;
  for (const auto& problem : report.errors) {
    text += (text.empty() ? "" : "\n") + ("tls." + problem.key) + ": " + problem.message;
  }
  return Error{text};
}

TlsContext::TlsContext(SslCtxPtr ctx, config::TlsSettings settings,
                       std::vector<std::uint8_t> alpn_wire, SessionResources sessions)
    : ctx_(std::move(ctx)),
      settings_(std::move(settings)),
      alpn_wire_(std::move(alpn_wire)),
      sessions_(std::move(sessions)),
      generation_(trustGenerationOf(ctx_.get(), settings_)) {}

TlsContext::~TlsContext() {
  SSL_CTX_set_app_data(ctx_.get(), nullptr);
}

int TlsContext::selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void* arg) {
  auto* self = static_cast<TlsContext*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, self->alpn_wire_.data(),
                            static_cast<unsigned int>(self->alpn_wire_.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // the client offered only protocols we do not speak
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

SslPtr TlsContext::newSsl() const {
  return SslPtr(SSL_new(ctx_.get()));
}

SessionFacts describeSession(SSL* ssl) {
  SessionFacts facts;
  facts.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) {
    facts.cipher = SSL_CIPHER_get_name(cipher);
  }
  facts.resumed = SSL_session_reused(ssl) == 1;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn != nullptr) {
    facts.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  }
  return facts;
}

bool peerCertificateCurrent(SSL* ssl) {
  X509* peer = ssl != nullptr ? SSL_get0_peer_certificate(ssl) : nullptr;
  if (peer == nullptr) {
    return true;
  }
  // X509_cmp_current_time: -1 for a time at or before now, 1 after it, 0 if unreadable.
  return X509_cmp_current_time(X509_get0_notBefore(peer)) < 0 &&
         X509_cmp_current_time(X509_get0_notAfter(peer)) > 0;
}

void forgetSession(SSL* ssl) {
  if (ssl == nullptr) {
    return;
  }
  SSL_SESSION* session = SSL_get_session(ssl);
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  if (session != nullptr && ctx != nullptr) {
    SSL_CTX_remove_session(ctx, session);  // also marks the session not resumable
  }
}

}  // namespace mqtls::tls

namespace mqtls::tls {

HandshakeFailure classifyHandshakeFailure(SSL* ssl, const std::vector<unsigned long>& errors) {
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    return {"verify_failed",
            std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify)};
  }
  // libevent records SSL_get_error()'s small result code first, then the OpenSSL error queue
  // oldest first; the oldest queued error is the most specific one.
  unsigned long code = 0;
  for (unsigned long candidate : errors) {
    if (ERR_GET_LIB(candidate) != 0) {
      code = candidate;
      break;
    }
  }
  if (code == 0) {
    return {"eof", "client closed the connection during the handshake"};
  }
  const char* text = ERR_reason_error_string(code);
  std::string detail = text != nullptr ? text : "handshake error";
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) {
    return {"error", detail};
  }
  switch (ERR_GET_REASON(code)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return {"no_certificate", detail};
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
      return {"protocol_version", detail};
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
      return {"no_shared_cipher", detail};
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return {"verify_failed", detail};
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
      return {"not_tls", detail};
    default:
      return {"error", detail};
  }
}

}  // namespace mqtls::tls

#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <ctime>

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
  auto key = pem::readPrivateKey(settings.key_file);
  if (!chain) {
    addError(
        report, "cert",
        chain.error().message + "; point 'cert' at the server certificate chain (PEM, leaf first)");
  }
  if (!key) {
    addError(report, "key",
             key.error().message + "; point 'key' at the server's private key (PEM)");
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
             "OpenSSL refuses the private key in '" + settings.key_file + "' (" +
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

// Called as a new session enters the server cache (already inserted): caps its lifetime at the
// client certificate's notAfter, so no session resumes past it. SSL_SESSION_set_timeout
// re-sorts a cached session in OpenSSL 3.0. A session whose certificate has already expired,
// or whose notAfter cannot be read, is removed at once. Returns 0: OpenSSL keeps no extra
// reference.
int capSessionLifetime(SSL* ssl, SSL_SESSION* session) {
  X509* peer = SSL_SESSION_get0_peer(session);
  if (peer == nullptr) {
    return 0;
  }
  std::time_t not_after = 0;
  const long created = SSL_SESSION_get_time(session);
  if (!toEpoch(X509_get0_notAfter(peer), not_after) || not_after <= created) {
    SSL_CTX_remove_session(SSL_get_SSL_CTX(ssl), session);
    return 0;
  }
  const long remaining = static_cast<long>(not_after - created);
  if (remaining < SSL_SESSION_get_timeout(session)) {
    SSL_SESSION_set_timeout(session, remaining);
  }
  return 0;
}

// Stateful resumption: a server-side cache instead of stateless tickets, which would re-encrypt
// and re-parse the client certificate on every handshake (measured: the cheaper path here).
void installSessionPolicy(SSL_CTX* ctx, const config::TlsSettings& settings) {
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (settings.session_cache_size == 0) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return;
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, static_cast<long>(settings.session_cache_size));
  SSL_CTX_set_timeout(ctx, static_cast<long>(settings.session_timeout.count() / 1000));
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_sess_set_new_cb(ctx, &capSessionLifetime);
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

}  // namespace

TlsContextPtr TlsContext::build(const config::TlsSettings& settings, BuildReport& report) {
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
  ERR_clear_error();
  if (report.errors.size() != errors_before) {
    return nullptr;
  }
  auto wire = alpnWire(settings.alpn);
  TlsContextPtr context(new TlsContext(std::move(ctx), settings, std::move(wire)));
  if (!context->alpn_wire_.empty()) {
    SSL_CTX_set_alpn_select_cb(context->raw(), &TlsContext::selectAlpn,
                               const_cast<TlsContext*>(context.get()));
  }
  return context;
}

Result<TlsContextPtr> TlsContext::create(const config::TlsSettings& settings) {
  BuildReport report;
  TlsContextPtr context = build(settings, report);
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
                       std::vector<std::uint8_t> alpn_wire)
    : ctx_(std::move(ctx)), settings_(std::move(settings)), alpn_wire_(std::move(alpn_wire)) {}

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

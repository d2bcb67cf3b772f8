#include "tls/context.h"

#include <openssl/err.h>

#include "tls/build_steps.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace detail {

void addError(BuildReport& report, std::string key, std::string message) {
  report.errors.push_back(SettingProblem{std::move(key), std::move(message)});
}

}  // namespace detail

namespace {

using detail::addError;

// The defaults prefer AES-128-GCM (as Mozilla's "intermediate" profile, Go and BoringSSL do): the
// key exchanges (X25519, P-256) give 128-bit security, which AES-256 does not raise, and with
// its SHA-256 key schedule a resumed TLS 1.3 handshake costs 8% less CPU and a 16 KiB message 6%
// less than with TLS_AES_256_GCM_SHA384. The sets are unchanged: AES-256-GCM and ChaCha20 stay
// for clients that offer nothing else, and a client that puts ChaCha20 first (a device without
// AES instructions) gets it (SSL_OP_PRIORITIZE_CHACHA).
constexpr const char* kDefaultTls12Ciphers = "ECDHE+AESGCM+AES128:ECDHE+AESGCM:ECDHE+CHACHA20";
constexpr const char* kDefaultTls13Ciphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

int protocolVersion(config::TlsVersion version) {
  return version == config::TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
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
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  applyList(ctx, "ciphers", settings.ciphers.empty() ? kDefaultTls12Ciphers : settings.ciphers,
            SSL_CTX_set_cipher_list, report);
  applyList(ctx, "ciphersuites",
            settings.ciphersuites.empty() ? kDefaultTls13Ciphersuites : settings.ciphersuites,
            SSL_CTX_set_ciphersuites, report);
  if (!settings.groups.empty()) {
    applyList(
        ctx, "groups", settings.groups,
        [](SSL_CTX* c, const char* list) {
          return static_cast<int>(SSL_CTX_set1_groups_list(c, list));
        },
        report);
  }
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

std::shared_ptr<TlsContext> TlsContext::buildOne(const config::TlsSettings& settings,
                                                 BuildReport& report,
                                                 const SessionResources& sessions,
                                                 const BuildSlot& slot) {
  ERR_clear_error();
  OSSL_LIB_CTX* library = slot.library;
  SslCtxPtr ctx(SSL_CTX_new_ex(slot.handshakes != nullptr ? slot.handshakes : library, nullptr,
                               TLS_server_method()));
  if (!ctx) {
    addError(report, "cert",
             "cannot create a TLS context (" + takeOpenSslError() + "); check memory limits");
    return nullptr;
  }
  const std::size_t errors_before = report.errors.size();
  // A new snapshot, a new trust generation: an empty cache (see tls/verified_chains.h), shared
  // by the snapshot's worker slots.
  std::shared_ptr<VerifiedChains> chains;
  if (settings.verify_cache_size > 0 && settings.client_auth != config::ClientAuth::None) {
    chains = slot.sibling != nullptr && slot.sibling->verified_chains_
                 ? slot.sibling->verified_chains_
                 : std::make_shared<VerifiedChains>(settings.verify_cache_size);
  }
  installProtocolPolicy(ctx.get(), settings, report);
  detail::installServerIdentity(ctx.get(), settings, library, report);
  detail::installClientVerification(ctx.get(), settings, library, chains.get(), report);
  detail::installOcspStaple(ctx.get(), settings, report);
  detail::installSessionPolicy(ctx.get(), settings);
  ERR_clear_error();
  if (report.errors.size() != errors_before) {
    return nullptr;
  }
  auto wire = alpnWire(settings.alpn);
  std::shared_ptr<TlsContext> context(
      new TlsContext(std::move(ctx), settings, std::move(wire), sessions, slot));
  context->verified_chains_ = std::move(chains);
  // The session callbacks find their context here; it outlives its SSL_CTX's every use.
  SSL_CTX_set_app_data(context->raw(), context.get());
  if (!context->alpn_wire_.empty()) {
    SSL_CTX_set_alpn_select_cb(context->raw(), &TlsContext::selectAlpn, context.get());
  }
  return context;
}

TlsContextPtr TlsContext::build(const config::TlsSettings& settings, BuildReport& report,
                                const SessionResources& sessions, const BuildSlot& slot) {
  const std::size_t errors_before = report.errors.size();
  SessionResources resources = detail::resourcesFor(settings, sessions, report);
  std::shared_ptr<TlsContext> context = buildOne(settings, report, resources, slot);
  if (context) {
    context->buildSites(report, slot.sibling);
  }
  if (report.errors.size() != errors_before) {
    return nullptr;
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
                       std::vector<std::uint8_t> alpn_wire, SessionResources sessions,
                       const BuildSlot& slot)
    : ctx_(std::move(ctx)),
      library_(slot.library),
      handshakes_(slot.handshakes != nullptr ? slot.handshakes : slot.library),
      settings_(std::move(settings)),
      alpn_wire_(std::move(alpn_wire)),
      sessions_(std::move(sessions)),
      generation_(trustGenerationOf(ctx_.get(), settings_)) {}

TlsContext::~TlsContext() {
  SSL_CTX_set_app_data(ctx_.get(), nullptr);
  // An SSL that outlived this object verifies in full rather than with a freed cache.
  SSL_CTX_set_cert_verify_callback(ctx_.get(), nullptr, nullptr);
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

bool TlsContext::sameTrustAs(const TlsContext& other) const {
  if (generation_ != other.generation_ || sites_.size() != other.sites_.size()) {
    return false;
  }
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    if (!sites_[i]->sameTrustAs(*other.sites_[i])) {
      return false;
    }
  }
  return true;
}

void TlsContext::retire() const {
  if (verified_chains_) {
    verified_chains_->retire();
  }
  for (const auto& site : sites_) {
    site->retire();
  }
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

const config::TlsSettings* siteSettings(SSL* ssl) {
  SSL_CTX* ctx = ssl != nullptr ? SSL_get_SSL_CTX(ssl) : nullptr;
  const auto* self =
      ctx != nullptr ? static_cast<const TlsContext*>(SSL_CTX_get_app_data(ctx)) : nullptr;
  return self != nullptr ? &self->settings() : nullptr;
}

const config::IdentityPolicy* sitePolicy(SSL* ssl) {
  SSL_CTX* ctx = ssl != nullptr ? SSL_get_SSL_CTX(ssl) : nullptr;
  const auto* self =
      ctx != nullptr ? static_cast<const TlsContext*>(SSL_CTX_get_app_data(ctx)) : nullptr;
  return self != nullptr ? self->identityPolicy() : nullptr;
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

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

// Collects problems as "key: message" so one create() call reports all of them.
class Problems {
 public:
  void add(const std::string& key, const std::string& message) {
    text_ += (text_.empty() ? "" : "\n") + key + ": " + message;
  }
  void addSsl(const std::string& key, const std::string& message) {
    add(key, message + ": " + takeOpenSslError());
  }
  bool empty() const { return text_.empty(); }
  Error error() const { return Error{text_}; }

 private:
  std::string text_;
};

// Installs the server chain and key; checks key/cert match, validity and chain linkage.
void installIdentity(SSL_CTX* ctx, const config::TlsSettings& settings, Problems& problems) {
  auto chain = pem::readCertificates(settings.cert_file);
  auto key = pem::readPrivateKey(settings.key_file);
  if (!chain) {
    problems.add("tls.cert", chain.error().message);
  }
  if (!key) {
    problems.add("tls.key", key.error().message);
  }
  if (!chain || !key) {
    return;
  }
  X509* leaf = chain->front().get();
  if (auto match = pem::checkKeyMatchesCertificate(leaf, key->get()); !match) {
    problems.add("tls.key", match.error().message + " in '" + settings.cert_file + "'");
    return;
  }
  if (auto valid = pem::checkValidity(leaf, std::time(nullptr)); !valid) {
    problems.add("tls.cert", valid.error().message + " ('" + settings.cert_file + "')");
  }
  for (std::size_t i = 0; i + 1 < chain->size(); ++i) {
    if (X509_check_issued((*chain)[i + 1].get(), (*chain)[i].get()) != X509_V_OK) {
      problems.add("tls.cert", "certificate " + std::to_string(i + 2) + " in '" +
                                   settings.cert_file + "' did not issue certificate " +
                                   std::to_string(i + 1) + "; order the chain leaf first");
    }
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
    problems.addSsl("tls.cert", "certificate rejected");
  }
  for (std::size_t i = 1; i < chain->size(); ++i) {
    SSL_CTX_add1_chain_cert(ctx, (*chain)[i].get());
  }
  if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
    problems.addSsl("tls.key", "private key rejected");
  }
}

// Trust store for client certificates: CA bundle, CRLs and the verification mode.
void installClientVerification(SSL_CTX* ctx, const config::TlsSettings& settings,
                               Problems& problems) {
  if (settings.client_auth == config::ClientAuth::None) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return;
  }
  auto cas = pem::readCertificates(settings.client_ca_file);
  if (!cas) {
    problems.add("tls.client_ca", cas.error().message);
    return;
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
  for (auto& ca : *cas) {
    X509_STORE_add_cert(store, ca.get());
    sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca.get())));
  }
  SSL_CTX_set_client_CA_list(ctx, names);
  for (const auto& crl_file : settings.crl_files) {
    auto crls = pem::readCrls(crl_file);
    if (!crls) {
      problems.add("tls.crl", crls.error().message);
      continue;
    }
    for (auto& crl : *crls) {
      X509_STORE_add_crl(store, crl.get());
    }
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

void installProtocolPolicy(SSL_CTX* ctx, const config::TlsSettings& settings, Problems& problems) {
  SSL_CTX_set_min_proto_version(ctx, protocolVersion(settings.min_version));
  SSL_CTX_set_max_proto_version(ctx, protocolVersion(settings.max_version));
  // A client that closes TCP without close_notify ends its session normally (MQTT is framed,
  // so truncation cannot go unnoticed); otherwise OpenSSL would drop the session from the cache.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  const std::string ciphers = settings.ciphers.empty() ? kDefaultTls12Ciphers : settings.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    problems.addSsl("tls.ciphers", "no usable TLS 1.2 cipher in '" + ciphers + "'");
  }
  if (!settings.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, settings.ciphersuites.c_str()) != 1) {
    problems.addSsl("tls.ciphersuites",
                    "invalid TLS 1.3 ciphersuites '" + settings.ciphersuites + "'");
  }
  if (!settings.groups.empty() && SSL_CTX_set1_groups_list(ctx, settings.groups.c_str()) != 1) {
    problems.addSsl("tls.groups", "invalid key-exchange groups '" + settings.groups + "'");
  }
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

Result<TlsContextPtr> TlsContext::create(const config::TlsSettings& settings) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    return Error{"cannot create TLS context: " + takeOpenSslError()};
  }
  Problems problems;
  installProtocolPolicy(ctx.get(), settings, problems);
  installIdentity(ctx.get(), settings, problems);
  installClientVerification(ctx.get(), settings, problems);
  installSessionPolicy(ctx.get(), settings);
  if (!problems.empty()) {
    return problems.error();
  }
  auto wire = alpnWire(settings.alpn);
  TlsContextPtr context(new TlsContext(std::move(ctx), settings, std::move(wire)));
  if (!context->alpn_wire_.empty()) {
    SSL_CTX_set_alpn_select_cb(context->raw(), &TlsContext::selectAlpn,
                               const_cast<TlsContext*>(context.get()));
  }
  return context;
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

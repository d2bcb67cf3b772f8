#include "tls/session_store.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>

namespace mqtls::tls {
namespace {

// Adds the DER of one certificate or CRL of a trust store; lengths keep boundaries unambiguous.
void hashObject(EVP_MD_CTX* md, X509_OBJECT* object) {
  unsigned char* der = nullptr;
  int length = -1;
  if (X509* cert = X509_OBJECT_get0_X509(object); cert != nullptr) {
    length = i2d_X509(cert, &der);
  } else if (X509_CRL* crl = X509_OBJECT_get0_X509_CRL(object); crl != nullptr) {
    length = i2d_X509_CRL(crl, &der);
  }
  if (length > 0) {
    EVP_DigestUpdate(md, &length, sizeof length);
    EVP_DigestUpdate(md, der, static_cast<std::size_t>(length));
  }
  OPENSSL_free(der);
}

}  // namespace

TrustGeneration trustGenerationOf(SSL_CTX* ctx, const config::TlsSettings& settings) {
  TrustGeneration out{};
  std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>> md(EVP_MD_CTX_new());
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
    out.fill(0xff);  // never equal to a real digest's generation by chance
    return out;
  }
  const int policy[] = {static_cast<int>(settings.client_auth), settings.verify_depth,
                        static_cast<int>(settings.crl_check),
                        static_cast<int>(settings.crl_files.size())};
  EVP_DigestUpdate(md.get(), policy, sizeof policy);
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    hashObject(md.get(), sk_X509_OBJECT_value(objects, i));
  }
  unsigned int length = 0;
  EVP_DigestFinal_ex(md.get(), out.data(), &length);
  ERR_clear_error();
  return out;
}

bool stillTrusted(SSL_CTX* ctx, X509* peer) {
  X509StoreCtxPtr verify(X509_STORE_CTX_new());
  if (!verify ||
      X509_STORE_CTX_init(verify.get(), SSL_CTX_get_cert_store(ctx), peer, nullptr) != 1) {
    ERR_clear_error();
    return false;
  }
  X509_STORE_CTX_set_default(verify.get(), "ssl_client");
  X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(verify.get()),
                              SSL_CTX_get_verify_depth(ctx));
  const bool ok = X509_verify_cert(verify.get()) == 1;
  ERR_clear_error();
  return ok;
}

SessionStore::SessionStore(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

std::string_view SessionStore::idOf(const SSL_SESSION* session) {
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &length);
  return {reinterpret_cast<const char*>(id), length};
}

void SessionStore::insert(SSL_SESSION* session, const TrustGeneration& generation) {
  const std::string_view id = idOf(session);
  if (id.empty() || SSL_SESSION_up_ref(session) != 1) {
    return;
  }
  SslSessionPtr owned(session);
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(id); it != index_.end()) {
    eraseLocked(it->second);
  }
  order_.push_front(Entry{std::string(id), std::move(owned), generation});
  index_.emplace(order_.front().id, order_.begin());
  while (order_.size() > capacity_) {
    eraseLocked(std::prev(order_.end()));
  }
}

std::optional<SessionStore::Found> SessionStore::find(std::string_view id, std::time_t now) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(id);
  if (it == index_.end()) {
    return std::nullopt;
  }
  SSL_SESSION* session = it->second->session.get();
  const long expires = SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session);
  if (now >= expires) {
    eraseLocked(it->second);
    return std::nullopt;
  }
  order_.splice(order_.begin(), order_, it->second);
  if (SSL_SESSION_up_ref(session) != 1) {
    return std::nullopt;
  }
  return Found{SslSessionPtr(session), order_.front().generation};
}

void SessionStore::setGeneration(std::string_view id, const TrustGeneration& generation) {
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(id); it != index_.end()) {
    it->second->generation = generation;
  }
}

void SessionStore::remove(std::string_view id) {
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(id); it != index_.end()) {
    eraseLocked(it->second);
  }
}

std::size_t SessionStore::size() const {
  std::lock_guard lock(mutex_);
  return order_.size();
}

void SessionStore::eraseLocked(Order::iterator it) {
  index_.erase(std::string_view(it->id));
  order_.erase(it);
}

}  // namespace mqtls::tls

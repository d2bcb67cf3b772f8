#include "tls/verified_chains.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "tls/build_steps.h"
#include "tls/crl.h"

namespace mqtls::tls {
namespace {

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>>;
void freeCrlStack(STACK_OF(X509_CRL) * stack) {
  sk_X509_CRL_pop_free(stack, X509_CRL_free);
}
using CrlStackPtr = std::unique_ptr<STACK_OF(X509_CRL), OpenSslDeleter<freeCrlStack>>;

// The slot of an SSL recording its VerifyCacheResult. OpenSSL hands out ex_data indexes once
// per process; the slot holds a small integer, no memory.
int resultSlot() {
  static const int slot = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

SSL* sslOf(X509_STORE_CTX* store) {
  return static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
}

void record(X509_STORE_CTX* store, VerifyCacheResult result) {
  if (SSL* ssl = sslOf(store)) {
    SSL_set_ex_data(ssl, resultSlot(),
                    reinterpret_cast<void*>(static_cast<std::uintptr_t>(result)));
  }
}

// Adds the DER of `cert`, length first, to the digest; false if it cannot be encoded.
bool digestCertificate(EVP_MD_CTX* md, X509* cert) {
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  if (length <= 0) {
    return false;
  }
  const unsigned char prefix[4] = {
      static_cast<unsigned char>(length >> 24), static_cast<unsigned char>(length >> 16),
      static_cast<unsigned char>(length >> 8), static_cast<unsigned char>(length)};
  const bool ok = EVP_DigestUpdate(md, prefix, sizeof prefix) == 1 &&
                  EVP_DigestUpdate(md, der, static_cast<std::size_t>(length)) == 1;
  OPENSSL_free(der);
  return ok;
}

// Narrows [not_before, not_after] to the validity of `from`..`until` (either may be null: no
// bound); false if a time cannot be read.
bool narrow(const ASN1_TIME* from, const ASN1_TIME* until, std::time_t& not_before,
            std::time_t& not_after) {
  std::time_t value = 0;
  if (from != nullptr) {
    if (!detail::toEpoch(from, value)) {
      return false;
    }
    not_before = std::max(not_before, value);
  }
  if (until != nullptr) {
    if (!detail::toEpoch(until, value)) {
      return false;
    }
    not_after = std::min(not_after, value);
  }
  return true;
}

// The window in which full verification of `chain` (just verified in `store` at `now`) would
// still give the same answer: within every certificate's notBefore..notAfter and, when CRLs are
// checked, for each CRL of each checked certificate's issuer (the leaf only, or the whole chain
// with X509_V_FLAG_CRL_CHECK_ALL): a current one bounds the window by its nextUpdate; one not
// valid yet ends the window when it becomes valid (OpenSSL then prefers it); one already past its
// nextUpdate was not what this clean verification used, and is ignored. False when a time
// cannot be read.
bool validityWindow(X509_STORE_CTX* store, STACK_OF(X509) * chain, std::time_t now,
                    std::time_t& not_before, std::time_t& not_after) {
  not_before = std::numeric_limits<std::time_t>::min();
  not_after = std::numeric_limits<std::time_t>::max();
  const int count = sk_X509_num(chain);
  for (int i = 0; i < count; ++i) {
    X509* cert = sk_X509_value(chain, i);
    if (!narrow(X509_get0_notBefore(cert), X509_get0_notAfter(cert), not_before, not_after)) {
      return false;
    }
  }
  const unsigned long flags = X509_VERIFY_PARAM_get_flags(X509_STORE_CTX_get0_param(store));
  if ((flags & X509_V_FLAG_CRL_CHECK) == 0) {
    return true;
  }
  const int checked = (flags & X509_V_FLAG_CRL_CHECK_ALL) != 0 ? count : std::min(count, 1);
  for (int i = 0; i < checked; ++i) {
    CrlStackPtr crls(
        X509_STORE_CTX_get1_crls(store, X509_get_issuer_name(sk_X509_value(chain, i))));
    for (int k = 0; k < sk_X509_CRL_num(crls.get()); ++k) {
      X509_CRL* crl = sk_X509_CRL_value(crls.get(), k);
      std::time_t last = 0;
      std::time_t next = std::numeric_limits<std::time_t>::max();
      const ASN1_TIME* next_update = X509_CRL_get0_nextUpdate(crl);
      if (!detail::toEpoch(X509_CRL_get0_lastUpdate(crl), last) ||
          (next_update != nullptr && !detail::toEpoch(next_update, next))) {
        return false;
      }
      if (last > now) {
        not_after = std::min(not_after, last);  // a staged CRL takes over then
      } else if (next >= now) {
        not_before = std::max(not_before, last);
        not_after = std::min(not_after, next);
      }
    }
  }
  return true;
}

// Keeps the chain `store` has just verified, if the verification was clean (X509_V_OK, nothing
// tolerated by the verify callback) and its window can be read.
void keepVerified(VerifiedChains& cache, const ChainKey& key, X509_STORE_CTX* store,
                  std::time_t now) {
  if (X509_STORE_CTX_get_error(store) != X509_V_OK || acceptedWithStaleCrl(sslOf(store))) {
    return;
  }
  X509StackPtr chain(X509_STORE_CTX_get1_chain(store));
  std::time_t not_before = 0;
  std::time_t not_after = 0;
  if (!chain || sk_X509_num(chain.get()) == 0 ||
      !validityWindow(store, chain.get(), now, not_before, not_after)) {
    return;
  }
  cache.insert(key, std::move(chain), not_before, not_after);
}

// The stack the client's certificates arrived in becomes the session's peer chain once the
// leaf is taken out of it. Nothing reads that chain (the verified chain holds what verification
// used, up-referenced), yet it would keep a parsed copy of every intermediate for the life of
// the connection and of its stored session: free them now, keep only the leaf.
void dropPresentedIntermediates(X509_STORE_CTX* store) {
  STACK_OF(X509)* presented = X509_STORE_CTX_get0_untrusted(store);
  while (sk_X509_num(presented) > 1) {
    X509_free(sk_X509_pop(presented));
  }
}

}  // namespace

VerifiedChains::VerifiedChains(std::size_t capacity)
    : capacity_(std::max<std::size_t>(capacity, 1)) {}

std::size_t VerifiedChains::KeyHash::operator()(const ChainKey& key) const {
  std::size_t value = 0;
  std::memcpy(&value, key.data(), sizeof value);  // already a uniform hash
  return value;
}

std::optional<ChainKey> VerifiedChains::keyOf(X509_STORE_CTX* store) {
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  MdCtxPtr md(EVP_MD_CTX_new());
  if (leaf == nullptr || !md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1 ||
      !digestCertificate(md.get(), leaf)) {
    return std::nullopt;
  }
  STACK_OF(X509)* untrusted = X509_STORE_CTX_get0_untrusted(store);
  for (int i = 0; i < sk_X509_num(untrusted); ++i) {
    if (!digestCertificate(md.get(), sk_X509_value(untrusted, i))) {
      return std::nullopt;
    }
  }
  ChainKey key{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(md.get(), key.data(), &length) != 1 || length != key.size()) {
    return std::nullopt;
  }
  return key;
}

X509StackPtr VerifiedChains::find(const ChainKey& key, std::time_t now) {
  std::lock_guard lock(mutex_);
  auto found = index_.find(key);
  if (found == index_.end()) {
    return nullptr;
  }
  auto entry = found->second;
  // As OpenSSL: a certificate or CRL is expired at its notAfter/nextUpdate second already.
  if (now < entry->not_before || now >= entry->not_after) {
    order_.erase(entry);
    index_.erase(found);
    return nullptr;
  }
  order_.splice(order_.begin(), order_, entry);
  return X509StackPtr(X509_chain_up_ref(entry->chain.get()));
}

void VerifiedChains::insert(const ChainKey& key, X509StackPtr chain, std::time_t not_before,
                            std::time_t not_after) {
  std::lock_guard lock(mutex_);
  if (retired_) {
    return;
  }
  if (auto found = index_.find(key); found != index_.end()) {
    order_.erase(found->second);
    index_.erase(found);
  }
  order_.push_front(Entry{key, std::move(chain), not_before, not_after});
  index_.emplace(key, order_.begin());
  while (order_.size() > capacity_) {
    index_.erase(order_.back().key);
    order_.pop_back();
  }
}

void VerifiedChains::retire() {
  std::lock_guard lock(mutex_);
  retired_ = true;
  index_.clear();
  order_.clear();
}

std::size_t VerifiedChains::size() const {
  std::lock_guard lock(mutex_);
  return order_.size();
}

int VerifiedChains::verify(X509_STORE_CTX* store, std::time_t now, FullVerify full) {
  const std::optional<ChainKey> key = keyOf(store);
  if (key) {
    if (X509StackPtr chain = find(*key, now)) {
      X509_STORE_CTX_set0_verified_chain(store, chain.release());
      X509_STORE_CTX_set_error(store, X509_V_OK);
      record(store, VerifyCacheResult::Hit);
      dropPresentedIntermediates(store);
      return 1;
    }
  }
  record(store, VerifyCacheResult::Miss);
  const int verdict = full(store);
  if (verdict == 1 && key) {
    keepVerified(*this, *key, store, now);
    dropPresentedIntermediates(store);
  }
  return verdict;
}

int VerifiedChains::callback(X509_STORE_CTX* store, void* arg) {
  return static_cast<VerifiedChains*>(arg)->verify(store, std::time(nullptr));
}

VerifyCacheResult verifyCacheResult(SSL* ssl) {
  if (ssl == nullptr) {
    return VerifyCacheResult::None;
  }
  const auto value = reinterpret_cast<std::uintptr_t>(SSL_get_ex_data(ssl, resultSlot()));
  switch (value) {
    case static_cast<std::uintptr_t>(VerifyCacheResult::Hit):
      return VerifyCacheResult::Hit;
    case static_cast<std::uintptr_t>(VerifyCacheResult::Miss):
      return VerifyCacheResult::Miss;
    default:
      return VerifyCacheResult::None;
  }
}

}  // namespace mqtls::tls

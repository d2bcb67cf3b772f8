// VerifiedChains: the client certificate chains one TlsContext has fully verified, so that a
// device presenting the same chain again (as devices do on every reconnect) skips the signature
// and CRL work of a full verification.
//
// Indistinguishable from full verification:
// - The key is SHA-256 over the exact DER of the certificates the client sent (leaf first, in
//   order); any other chain, even one differing by a byte, misses.
// - A cache belongs to one snapshot, i.e. one trust generation (CA bundle, CRLs, verify settings,
//   SNI site), and is shared by the contexts its worker slots build from the same files: a reload
//   builds new contexts with an empty cache, so a certificate revoked by a new CRL, or whose CA
//   was removed, is verified in full again and refused.
// - An entry is used only while "now" is within the validity of every certificate of the
//   verified chain and of every CRL it was checked against (lastUpdate..nextUpdate); outside it,
//   the chain is verified in full again (and refused if expired).
// - Only a clean verification is kept: a failure never is, nor an acceptance that tolerated an
//   error (crl_next_update lenient with a CRL past its nextUpdate).
//
// Bounded (least recently used entries go first) and thread-safe: the workers share a cache.
// One lock per full handshake with a client certificate; nothing per packet.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <cstddef>
#include <ctime>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "util/openssl_ptr.h"

namespace mqtls::tls {

// SHA-256 over the DER of the presented chain.
using ChainKey = std::array<unsigned char, 32>;

// What the client chain verification of one handshake did: nothing (no cache, no client
// certificate, or a resumed session), found a verified chain (hit) or verified in full (miss).
enum class VerifyCacheResult { None, Hit, Miss };

class VerifiedChains {
 public:
  // Keeps at most `capacity` chains (at least 1).
  explicit VerifiedChains(std::size_t capacity);

  VerifiedChains(const VerifiedChains&) = delete;
  VerifiedChains& operator=(const VerifiedChains&) = delete;

  // The key of the chain `store` is about to verify: its leaf, then every untrusted certificate
  // the client sent, in order. nullopt when there is no leaf or a certificate cannot be encoded.
  static std::optional<ChainKey> keyOf(X509_STORE_CTX* store);

  // A copy (every certificate up-referenced) of the chain kept under `key`, made the most
  // recently used, if not_before <= now <= not_after; an entry outside its window is dropped.
  // Null when there is none (or on allocation failure).
  X509StackPtr find(const ChainKey& key, std::time_t now);

  // Keeps `chain` under `key` (replacing an entry with the same key) as the most recently used,
  // usable from not_before to not_after; drops the least recently used beyond capacity.
  void insert(const ChainKey& key, X509StackPtr chain, std::time_t not_before,
              std::time_t not_after);

  std::size_t size() const;

  // Empties the cache and keeps nothing from now on: its context was replaced (a reload), and the
  // connections still holding it must not keep thousands of parsed chains alive.
  void retire();

  // Full verification: X509_verify_cert, or a stand-in in tests.
  using FullVerify = int (*)(X509_STORE_CTX*);

  // Verifies the client chain of `store` at `now`. A hit sets the cached verified chain on
  // `store`, the error X509_V_OK, and returns 1 without calling `full`. A miss (or anything
  // unusual: no leaf, hashing fails) returns what `full` returns, with `store` as it left it,
  // and keeps the chain if `full` succeeded cleanly. Records the result on the SSL of `store`,
  // if any (see verifyCacheResult).
  // After a successful verification (either way) the intermediates the client sent are freed:
  // SSL_get_peer_cert_chain() is empty from then on; SSL_get0_verified_chain() has the chain.
  int verify(X509_STORE_CTX* store, std::time_t now, FullVerify full = &X509_verify_cert);

  // For SSL_CTX_set_cert_verify_callback: `arg` is the VerifiedChains; verify() at the current
  // time with X509_verify_cert.
  static int callback(X509_STORE_CTX* store, void* arg);

 private:
  struct Entry {
    ChainKey key;
    X509StackPtr chain;
    std::time_t not_before;
    std::time_t not_after;
  };
  struct KeyHash {
    std::size_t operator()(const ChainKey& key) const;
  };

  const std::size_t capacity_;
  mutable std::mutex mutex_;  // guards order_, index_ and retired_
  bool retired_ = false;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<ChainKey, std::list<Entry>::iterator, KeyHash> index_;
};

// What the client chain verification of `ssl`'s handshake did. Safe with null.
VerifyCacheResult verifyCacheResult(SSL* ssl);

}  // namespace mqtls::tls

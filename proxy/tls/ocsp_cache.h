// OcspCache: the answers of OCSP responders, shared by every worker of the process and kept
// across reloads (the Server owns it). Keyed by the DER certificate id and the responder URL.
// Only definite answers (good, revoked, unknown) are kept, each until the time its check gave;
// the least recently used entry goes first when the cache is full. All methods are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "tls/ocsp.h"

namespace mqtls::tls {

class OcspCache {
 public:
  using Clock = std::chrono::steady_clock;

  // Keeps at most `capacity` answers; 0 keeps none.
  explicit OcspCache(std::size_t capacity) : capacity_(capacity) {}

  static std::string key(const std::string& cert_id_der, const std::string& responder_url) {
    return cert_id_der + '\n' + responder_url;
  }

  // The answer stored under `key` if it is still valid at `now` (it then becomes the most
  // recently used); an expired entry is dropped.
  std::optional<OcspAnswer> find(const std::string& key, Clock::time_point now = Clock::now());

  // Stores `answer` until now + answer.keep_for. Invalid answers and answers with no time to
  // keep are ignored.
  void store(const std::string& key, const OcspAnswer& answer,
             Clock::time_point now = Clock::now());

  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    std::string key;
    OcspAnswer answer;
    Clock::time_point expires;
  };
  using List = std::list<Entry>;

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  List entries_;  // most recently used first
  std::unordered_map<std::string, List::iterator> index_;
};

}  // namespace mqtls::tls

#include "tls/ocsp_cache.h"

namespace mqtls::tls {

std::optional<OcspAnswer> OcspCache::find(const std::string& key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    return std::nullopt;
  }
  if (it->second->expires <= now) {
    entries_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  entries_.splice(entries_.begin(), entries_, it->second);
  return it->second->answer;
}

void OcspCache::store(const std::string& key, const OcspAnswer& answer, Clock::time_point now) {
  if (capacity_ == 0 || answer.status == OcspStatus::Invalid ||
      answer.keep_for <= std::chrono::seconds(0)) {
    return;
  }
  std::lock_guard lock(mutex_);
  const auto expires = now + answer.keep_for;
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->answer = answer;
    it->second->expires = expires;
    entries_.splice(entries_.begin(), entries_, it->second);
    return;
  }
  if (entries_.size() >= capacity_) {
    index_.erase(entries_.back().key);
    entries_.pop_back();
  }
  entries_.push_front(Entry{key, answer, expires});
  index_.emplace(key, entries_.begin());
}

std::size_t OcspCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace mqtls::tls

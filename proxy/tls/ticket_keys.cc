#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include <fstream>
#include <sstream>

namespace mqtls::tls {
namespace {

constexpr std::size_t kKeyBytes = 80;
constexpr const char* kMakeKey = "make one with: openssl rand 80 | openssl base64 -A";

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// One base64 line -> one key; nullopt unless it decodes to exactly 80 bytes.
std::optional<TicketKey> decodeKey(std::string_view line) {
  if (line.size() % 4 != 0 || line.size() > 4 * ((kKeyBytes + 2) / 3)) {
    return std::nullopt;
  }
  std::array<unsigned char, 4 * ((kKeyBytes + 2) / 3)> raw{};
  const int decoded =
      EVP_DecodeBlock(raw.data(), reinterpret_cast<const unsigned char*>(line.data()),
                      static_cast<int>(line.size()));
  std::size_t padding = 0;
  for (auto it = line.rbegin(); it != line.rend() && *it == '='; ++it) {
    ++padding;
  }
  if (decoded < 0 || static_cast<std::size_t>(decoded) - padding != kKeyBytes) {
    OPENSSL_cleanse(raw.data(), raw.size());
    return std::nullopt;
  }
  TicketKey key;
  std::copy_n(raw.begin(), 16, key.name.begin());
  std::copy_n(raw.begin() + 16, 32, key.hmac.begin());
  std::copy_n(raw.begin() + 48, 32, key.aes.begin());
  OPENSSL_cleanse(raw.data(), raw.size());
  return key;
}

std::optional<TicketKey> randomKey(std::time_t now) {
  TicketKey key;
  if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
      RAND_priv_bytes(key.hmac.data(), static_cast<int>(key.hmac.size())) != 1 ||
      RAND_priv_bytes(key.aes.data(), static_cast<int>(key.aes.size())) != 1) {
    return std::nullopt;
  }
  key.created = now;
  return key;
}

}  // namespace

TicketKeys::TicketKeys(std::chrono::seconds rotation, std::chrono::seconds lifetime)
    : rotation_(rotation), lifetime_(lifetime) {}

TicketKeys::TicketKeys(std::string file, std::vector<TicketKey> keys)
    : file_(std::move(file)), keys_(std::move(keys)) {}

Result<std::vector<TicketKey>> TicketKeys::parse(std::string_view text) {
  std::vector<TicketKey> keys;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') {
      continue;
    }
    auto key = decodeKey(line);
    if (!key) {
      return Error{"line " + std::to_string(line_number) +
                   " is not the base64 of an 80-byte key (16-byte name, 32-byte HMAC secret, "
                   "32-byte AES key); " +
                   kMakeKey};
    }
    keys.push_back(*key);
  }
  if (keys.empty()) {
    return Error{std::string("holds no ticket key; ") + kMakeKey + ", one key per line"};
  }
  return keys;
}

Result<std::unique_ptr<TicketKeys>> TicketKeys::fromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) {
    return Error{"cannot read ticket key file '" + path + "'; check the path and permissions"};
  }
  std::string content = text.str();
  auto keys = parse(content);
  OPENSSL_cleanse(content.data(), content.size());
  if (!keys) {
    return Error{"ticket key file '" + path + "' " + keys.error().message};
  }
  return std::unique_ptr<TicketKeys>(new TicketKeys(path, std::move(*keys)));
}

Status TicketKeys::reload() {
  if (file_.empty()) {
    std::lock_guard lock(mutex_);
    return rotateLocked(std::time(nullptr)) ? Status::success()
                                            : Status::failure("cannot make a ticket key");
  }
  auto fresh = fromFile(file_);
  if (!fresh) {
    return fresh.error();
  }
  std::lock_guard lock(mutex_);
  keys_ = std::move((*fresh)->keys_);
  return Status::success();
}

bool TicketKeys::rotateLocked(std::time_t now) {
  auto key = randomKey(now);
  if (!key) {
    return false;
  }
  keys_.insert(keys_.begin(), *key);
  // keys_[i] stopped encrypting when keys_[i-1] was made; it decrypts for one lifetime more.
  for (std::size_t i = 1; i < keys_.size(); ++i) {
    if (now - keys_[i - 1].created >= lifetime_.count()) {
      keys_.resize(i);
      break;
    }
  }
  return true;
}

std::optional<TicketKey> TicketKeys::encryptionKey(std::time_t now) {
  std::lock_guard lock(mutex_);
  const bool due =
      file_.empty() && (keys_.empty() || now - keys_.front().created >= rotation_.count());
  if (due && !rotateLocked(now) && keys_.empty()) {
    return std::nullopt;
  }
  return keys_.front();
}

std::optional<TicketKeys::Decryption> TicketKeys::decryptionKey(const unsigned char* name,
                                                                std::time_t now) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (CRYPTO_memcmp(keys_[i].name.data(), name, keys_[i].name.size()) != 0) {
      continue;
    }
    // An in-memory key retired (by keys_[i-1]) more than a lifetime ago no longer decrypts.
    if (file_.empty() && i > 0 && now - keys_[i - 1].created >= lifetime_.count()) {
      return std::nullopt;
    }
    return Decryption{keys_[i], i != 0};
  }
  return std::nullopt;
}

int TicketKeys::crypt(unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int enc, std::time_t now) {
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_END};
  if (enc == 1) {
    std::optional<TicketKey> key = encryptionKey(now);
    int rc = -1;
    if (key && RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) == 1 &&
        EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv) == 1 &&
        EVP_MAC_init(mac, key->hmac.data(), key->hmac.size(), params) == 1) {
      std::memcpy(name, key->name.data(), key->name.size());
      rc = 1;
    }
    if (key) {
      OPENSSL_cleanse(&*key, sizeof *key);
    }
    return rc;
  }
  std::optional<Decryption> found = decryptionKey(name, now);
  if (!found) {
    return 0;
  }
  int rc = -1;
  if (EVP_MAC_init(mac, found->key.hmac.data(), found->key.hmac.size(), params) == 1 &&
      EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, found->key.aes.data(), iv) == 1) {
    rc = found->renew ? 2 : 1;
  }
  OPENSSL_cleanse(&found->key, sizeof found->key);
  return rc;
}

}  // namespace mqtls::tls

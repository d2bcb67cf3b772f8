// TicketKeys: the keys that encrypt stateless session tickets (tickets mode) of one listener,
// shared by every context of it. Either made in memory and rotated every `rotation` (a retired
// key still decrypts for one session lifetime), or read from a key file in the format of
// HAProxy's tls-ticket-keys: one base64 line per 80-byte key, each 16-byte name, 32-byte HMAC
// secret, 32-byte AES key (nginx's order for 80-byte keys), newest first. The first key encrypts,
// all decrypt; replicas given the same file resume each other's sessions. Thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>

#include "util/result.h"

namespace mqtls::tls {

struct TicketKey {
  std::array<unsigned char, 16> name{};
  std::array<unsigned char, 32> hmac{};  // HMAC-SHA256 secret
  std::array<unsigned char, 32> aes{};   // AES-256-CBC key
  std::time_t created = 0;               // in-memory keys: when it began encrypting
};

class TicketKeys {
 public:
  // Keys made in memory: a fresh key every `rotation`, retired keys decrypt for `lifetime`.
  TicketKeys(std::chrono::seconds rotation, std::chrono::seconds lifetime);

  // Keys read from `path`; fails with a message naming the file and line, and how to fix it.
  static Result<std::unique_ptr<TicketKeys>> fromFile(const std::string& path);

  // Parses the key file format (see above); blank lines and lines starting with '#' are skipped.
  static Result<std::vector<TicketKey>> parse(std::string_view text);

  // Re-reads the key file (keeping the old keys if it fails), or rotates in-memory keys now.
  Status reload();

  // The key file, or empty for in-memory keys (for a reload watcher).
  const std::string& file() const { return file_; }
  // In-memory keys: how often a new key comes, and how long a retired one still decrypts.
  std::chrono::seconds rotation() const { return rotation_; }
  std::chrono::seconds lifetime() const { return lifetime_; }

  // The key to encrypt with at `now` (in-memory keys rotate here when due); nullopt only if
  // a fresh key cannot be made.
  std::optional<TicketKey> encryptionKey(std::time_t now);

  // The key named `name`, usable for decryption at `now`, and whether a ticket under it should
  // be renewed (it is not the current encryption key).
  struct Decryption {
    TicketKey key;
    bool renew = false;
  };
  std::optional<Decryption> decryptionKey(const unsigned char* name, std::time_t now);

  // The body of OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb): sets up
  // AES-256-CBC and HMAC-SHA256 with the encryption key (enc 1: fills name and iv; returns 1)
  // or with the key `name` names (returns 1, 2 to renew the ticket, 0 for an unknown or retired
  // key: a full handshake). -1 on an internal failure.
  int crypt(unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
            int enc, std::time_t now);

 private:
  TicketKeys(std::string file, std::vector<TicketKey> keys);
  bool rotateLocked(std::time_t now);  // in-memory only: prepends a new key, drops retired ones

  std::string file_;
  std::chrono::seconds rotation_{0};
  std::chrono::seconds lifetime_{0};
  std::mutex mutex_;
  std::vector<TicketKey> keys_;  // newest first
};

}  // namespace mqtls::tls

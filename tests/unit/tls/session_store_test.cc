// SessionStore on its own: bounded (least recently used sessions go first), sessions expire at
// their creation time plus timeout, generations are kept and updated, and ticket key files are
// read in the HAProxy / nginx 80-byte format.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <atomic>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "tls/session_store.h"
#include "tls/ticket_keys.h"

namespace mqtls::tls {
namespace {

constexpr std::time_t kCreated = 1'700'000'000;

// A session with id `id`, created at kCreated, living `timeout` seconds.
SslSessionPtr session(const std::string& id, long timeout = 300) {
  SslSessionPtr s(SSL_SESSION_new());
  SSL_SESSION_set1_id(s.get(), reinterpret_cast<const unsigned char*>(id.data()),
                      static_cast<unsigned int>(id.size()));
  SSL_SESSION_set_time(s.get(), kCreated);
  SSL_SESSION_set_timeout(s.get(), timeout);
  return s;
}

TrustGeneration generation(unsigned char fill) {
  TrustGeneration g;
  g.fill(fill);
  return g;
}

TEST(SessionStore, EvictsTheLeastRecentlyUsedBeyondCapacity) {
  SessionStore store(2);
  auto a = session("aaaa");
  auto b = session("bbbb");
  auto c = session("cccc");
  store.insert(a.get(), generation(1));
  store.insert(b.get(), generation(1));
  ASSERT_TRUE(store.find("aaaa", kCreated));  // a is now the most recently used
  store.insert(c.get(), generation(1));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_TRUE(store.find("aaaa", kCreated));
  EXPECT_FALSE(store.find("bbbb", kCreated));
  EXPECT_TRUE(store.find("cccc", kCreated));
}

TEST(SessionStore, SessionsExpireAfterTheirTimeout) {
  SessionStore store(10);
  auto s = session("aaaa", 60);
  store.insert(s.get(), generation(1));
  EXPECT_TRUE(store.find("aaaa", kCreated + 59));
  EXPECT_FALSE(store.find("aaaa", kCreated + 60));
  EXPECT_EQ(store.size(), 0u);  // an expired session is removed, not kept
}

TEST(SessionStore, KeepsAReferenceAndTheGeneration) {
  SessionStore store(10);
  auto s = session("aaaa");
  store.insert(s.get(), generation(1));
  s.reset();  // the store's reference keeps it alive
  auto found = store.find("aaaa", kCreated);
  ASSERT_TRUE(found);
  EXPECT_EQ(SessionStore::idOf(found->session.get()), "aaaa");
  EXPECT_EQ(found->generation, generation(1));
  store.setGeneration("aaaa", generation(2));
  EXPECT_EQ(store.find("aaaa", kCreated)->generation, generation(2));
  store.remove("aaaa");
  EXPECT_FALSE(store.find("aaaa", kCreated));
  store.remove("never-there");
}

TEST(SessionStore, ReplacesASessionUnderTheSameId) {
  SessionStore store(10);
  auto first = session("aaaa");
  auto second = session("aaaa");
  store.insert(first.get(), generation(1));
  store.insert(second.get(), generation(2));
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.find("aaaa", kCreated)->session.get(), second.get());
}

// base64 of 80 bytes: name = 16 x 'N', HMAC secret = 32 x 'H', AES key = 32 x 'A'.
std::string keyLine(char name) {
  std::string raw = std::string(16, name) + std::string(32, 'H') + std::string(32, 'A');
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

TEST(TicketKeyFile, ReadsEightyByteKeysInNginxOrderNewestFirst) {
  auto keys =
      TicketKeys::parse("# rotated hourly\n" + keyLine('B') + "\n\n" + keyLine('A') + "\r\n");
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].name[0], 'B');
  EXPECT_EQ((*keys)[1].name[0], 'A');
  EXPECT_EQ((*keys)[0].hmac[31], 'H');  // bytes 16..47
  EXPECT_EQ((*keys)[0].aes[0], 'A');    // bytes 48..79
}

TEST(TicketKeyFile, RefusesOtherSizesAndEmptyFilesSayingHowToMakeAKey) {
  auto short_key = TicketKeys::parse(keyLine('A') + "\nAAAA\n");
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.error().message.find("line 2"), std::string::npos);
  EXPECT_NE(short_key.error().message.find("openssl rand 80"), std::string::npos);
  EXPECT_FALSE(TicketKeys::parse("not base64!!\n").ok());
  EXPECT_FALSE(TicketKeys::parse("# nothing\n").ok());
  EXPECT_FALSE(TicketKeys::fromFile("/nonexistent/ticket.keys").ok());
}

TEST(TicketKeys, InMemoryKeysRotateAndRetiredKeysDecryptForOneLifetime) {
  TicketKeys keys(std::chrono::seconds(100), std::chrono::seconds(50));
  auto first = keys.encryptionKey(kCreated);
  ASSERT_TRUE(first);
  EXPECT_EQ(keys.encryptionKey(kCreated + 99)->name, first->name);
  auto second = keys.encryptionKey(kCreated + 100);  // rotation due
  ASSERT_TRUE(second);
  EXPECT_NE(second->name, first->name);
  auto old = keys.decryptionKey(first->name.data(), kCreated + 149);
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->renew);
  EXPECT_FALSE(keys.decryptionKey(first->name.data(), kCreated + 150));
  EXPECT_FALSE(keys.decryptionKey(second->name.data(), kCreated + 150)->renew);
}

// The workers of a process share one store and one set of ticket keys, each used from every
// worker's thread at once (scripts/tsan.sh runs this under ThreadSanitizer). A thread always
// finds what it just stored unless it was evicted, the store never exceeds its capacity, and a
// ticket key just handed out for encryption always decrypts.
TEST(SessionStore, IsSharedSafelyBetweenThreads) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  SessionStore store(32);
  TicketKeys keys(std::chrono::seconds(10), std::chrono::seconds(1000));
  std::atomic<std::time_t> clock{kCreated};
  std::atomic<int> hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto mine = generation(static_cast<unsigned char>(t + 1));
      for (int i = 0; i < kRounds; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i % 50);
        auto s = session(id);
        store.insert(s.get(), mine);
        if (auto found = store.find(id, kCreated)) {
          EXPECT_EQ(found->generation, mine);
          ++hits;
        }
        store.setGeneration(id, mine);
        if (i % 7 == 0) {
          store.remove(id);
        }
        EXPECT_LE(store.size(), store.capacity());
        const std::time_t now = ++clock;
        auto key = keys.encryptionKey(now);
        ASSERT_TRUE(key);
        EXPECT_TRUE(keys.decryptionKey(key->name.data(), now));
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_GT(hits.load(), 0);
  EXPECT_LE(store.size(), store.capacity());
}

}  // namespace
}  // namespace mqtls::tls

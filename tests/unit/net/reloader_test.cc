// Reloader: the debouncer turns a burst of events into one reload; the watcher (real inotify on
// real files in a temporary directory, a short window) reloads once per burst, waits for a key
// to match its certificate before calling anything a failure, and counts a failure that lasts;
// restart-only settings are named when they change.
#include "net/reloader.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace mqtls::net {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = Debouncer::Clock;

TEST(Debouncer, ManyEventsWithinTheWindowFireOnce) {
  Debouncer debouncer(250ms);
  const Clock::time_point t0{};
  EXPECT_FALSE(debouncer.remaining(t0));
  EXPECT_FALSE(debouncer.fire(t0));
  for (int i = 0; i < 20; ++i) {  // an event every 100 ms for 2 s: never quiet for 250 ms
    debouncer.notify(t0 + i * 100ms);
    EXPECT_FALSE(debouncer.fire(t0 + i * 100ms + 249ms));
  }
  const auto last = t0 + 1900ms;
  EXPECT_EQ(debouncer.remaining(last + 50ms), 200ms);
  EXPECT_FALSE(debouncer.fire(last + 249ms));
  EXPECT_TRUE(debouncer.fire(last + 250ms));
  EXPECT_FALSE(debouncer.fire(last + 10s));  // once per burst
  EXPECT_FALSE(debouncer.remaining(last + 10s));
  debouncer.notify(last + 11s);  // a new burst
  EXPECT_TRUE(debouncer.fire(last + 11s + 250ms));
}

double metric(ops::Metrics& metrics, const std::string& family, const std::string& result) {
  double total = 0;
  for (const auto& collected : metrics.registry().Collect()) {
    for (const auto& m : collected.metric) {
      for (const auto& label : m.label) {
        if (collected.name == family && label.name == "result" && label.value == result) {
          total += m.counter.value;
        }
      }
    }
  }
  return total;
}

std::string pki(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

// A listener whose certificate and key live in a temporary directory, watched by a reloader
// with a 200 ms window and a 1.2 s mismatch grace.
class ReloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mqtls-reloader-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    put("server-ec.pem", "server.pem");
    put("server-ec.key", "server.key");
    config_.source_path = (dir_ / "mqtls.yaml").string();
    config::Listener listener;
    listener.name = "mqtts";
    listener.tls.cert_file = (dir_ / "server.pem").string();
    listener.tls.key_file = (dir_ / "server.key").string();
    listener.tls.client_ca_file = pki("ca-bundle.pem");
    config_.listeners.push_back(listener);
    tls::BuildReport report;
    store_ = std::make_unique<tls::ContextStore>(tls::ContextStore::build(listener.tls, report));
    reloader_ = std::make_unique<Reloader>(
        config_, std::vector<tls::ContextStore*>{store_.get()}, metrics_,
        Reloader::Options{std::chrono::milliseconds(200), std::chrono::milliseconds(1200)});
    ASSERT_TRUE(reloader_->start().ok());
  }
  void TearDown() override {
    reloader_.reset();
    fs::remove_all(dir_);
  }

  // Copies a PKI file over `name` in the directory by rename, as rotation tools do.
  void put(const std::string& from, const std::string& name) {
    fs::copy_file(pki(from), dir_ / (name + ".tmp"), fs::copy_options::overwrite_existing);
    fs::rename(dir_ / (name + ".tmp"), dir_ / name);
  }
  // Waits (up to 5 s) until `done` holds.
  template <typename Predicate>
  bool eventually(Predicate done) {
    for (auto end = Clock::now() + 5s; Clock::now() < end; std::this_thread::sleep_for(10ms)) {
      if (done()) {
        return true;
      }
    }
    return done();
  }
  int servedKeyType() {
    X509* leaf = SSL_CTX_get0_certificate(store_->current()->raw());
    return EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
  }
  double reloads(const std::string& result) {
    return metric(metrics_, "mqtls_tls_reloads_total", result);
  }

  fs::path dir_;
  config::Config config_;
  ops::Metrics metrics_;
  std::unique_ptr<tls::ContextStore> store_;
  std::unique_ptr<Reloader> reloader_;
};

TEST_F(ReloaderTest, ABurstOfWritesEndsInOneReload) {
  for (int i = 0; i < 10; ++i) {  // 10 rewrites 20 ms apart: one burst
    put(i % 2 ? "server-ec.pem" : "server-rsa.pem", "server.pem");
    std::this_thread::sleep_for(20ms);
  }
  put("server-rsa.pem", "server.pem");
  put("server-rsa.key", "server.key");
  ASSERT_TRUE(eventually([&] { return reloader_->completed() >= 1; }));
  std::this_thread::sleep_for(500ms);  // nothing else happens once it settled
  EXPECT_EQ(reloader_->completed(), 1u);
  EXPECT_EQ(reloads("ok"), 1);
  EXPECT_EQ(reloads("failed"), 0);
  EXPECT_EQ(servedKeyType(), EVP_PKEY_RSA);
}

TEST_F(ReloaderTest, AnUnrelatedFileInTheDirectoryDoesNotReload) {
  std::ofstream(dir_ / "notes.txt") << "not a certificate";
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(reloader_->completed(), 0u);
}

TEST_F(ReloaderTest, AKeyThatDoesNotMatchYetIsWaitedFor) {
  auto before = store_->current();
  put("server-rsa.key", "server.key");  // the certificate follows later than the window
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(reloads("failed"), 0);
  EXPECT_EQ(store_->current(), before);
  put("server-rsa.pem", "server.pem");
  ASSERT_TRUE(eventually([&] { return reloads("ok") == 1; }));
  EXPECT_EQ(servedKeyType(), EVP_PKEY_RSA);
  std::this_thread::sleep_for(1300ms);  // past the grace: nothing left to report
  EXPECT_EQ(reloads("failed"), 0);
}

TEST_F(ReloaderTest, AMismatchThatLastsIsAFailureCountedOnce) {
  auto before = store_->current();
  put("server-rsa.key", "server.key");
  ASSERT_TRUE(eventually([&] { return reloads("failed") == 1; }));
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(reloads("failed"), 1);
  EXPECT_EQ(reloads("ok"), 0);
  EXPECT_EQ(store_->current(), before);
  put("server-rsa.pem", "server.pem");  // the next good change is picked up
  ASSERT_TRUE(eventually([&] { return reloads("ok") == 1; }));
  EXPECT_EQ(servedKeyType(), EVP_PKEY_RSA);
}

TEST_F(ReloaderTest, ACertificatePathThatBecomesADirectoryFailsTheReloadOnly) {
  auto before = store_->current();
  fs::remove(dir_ / "server.pem");
  fs::create_directory(dir_ / "server.pem");  // a rotation gone wrong
  ASSERT_TRUE(eventually([&] { return reloads("failed") == 1; }));
  EXPECT_EQ(store_->current(), before) << "the last good context is kept";
  fs::remove(dir_ / "server.pem");
  put("server-ec.pem", "server.pem");  // put right: picked up again
  ASSERT_TRUE(eventually([&] { return reloads("ok") == 1; }));
  EXPECT_NE(store_->current(), before);
}

TEST(RestartOnlyChanges, NamesEachChangedKeyAndNotTlsSettings) {
  config::Config running;
  running.workers = 2;
  running.listeners.resize(1);
  config::Config next = running;
  EXPECT_TRUE(restartOnlyChanges(running, next).empty());
  next.listeners[0].tls.cert_file = "/other.pem";  // applied by a reload, not restart-only
  next.listeners[0].tls.crl_files = {"/new.crl"};
  EXPECT_TRUE(restartOnlyChanges(running, next).empty());
  next.workers = 3;
  next.worker_scheduling = config::WorkerScheduling::Normal;
  next.listeners[0].port = 9999;
  next.upstream.host = "broker";
  next.limits.max_connections = 5;
  next.identity.username_from = {config::IdentitySource::SpiffeId};
  next.log.level = "debug";
  next.metrics.listen = "127.0.0.1:1";
  std::vector<std::string> expected = {"workers",
                                       "worker_scheduling",
                                       "log.level",
                                       "metrics.listen",
                                       "listeners[0].port",
                                       "upstream.host",
                                       "limits.max_connections",
                                       "identity.username_from"};
  EXPECT_EQ(restartOnlyChanges(running, next), expected);
  next = running;
  next.listeners.resize(2);
  EXPECT_EQ(restartOnlyChanges(running, next), std::vector<std::string>{"listeners (count)"});
}

}  // namespace
}  // namespace mqtls::net

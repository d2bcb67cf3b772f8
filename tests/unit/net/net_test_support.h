// Test bed for the connection state machine: one event loop, a ConnectionHost whose metrics are
// the real Metrics object (read back through its registry), a TLS client on one end of a
// socketpair whose other end is the accepted client socket, and a broker stand-in listening on
// a Unix socket that records what it receives. No broker process, no network.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/connection.h"
#include "ops/metrics.h"
#include "tls/context.h"
#include "util/event_ptr.h"

namespace mqtls::net::testing {

inline std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

// Everything one bufferevent received, and whether it closed.
struct Peer {
  BufferEventPtr bev;
  std::vector<std::uint8_t> received;
  bool connected = false;
  bool closed = false;
  bool reading = true;  // false: bytes stay in the kernel (a reader that stopped)

  void attach(bufferevent* b) {
    bev.reset(b);
    bufferevent_setcb(b, &Peer::onRead, nullptr, &Peer::onEvent, this);
    bufferevent_enable(b, EV_READ | EV_WRITE);
  }
  void send(const std::vector<std::uint8_t>& bytes) {
    bufferevent_write(bev.get(), bytes.data(), bytes.size());
  }
  void send(const std::string& bytes) { bufferevent_write(bev.get(), bytes.data(), bytes.size()); }
  void stopReading() {
    reading = false;
    bufferevent_disable(bev.get(), EV_READ);
  }
  void startReading() {
    reading = true;
    bufferevent_enable(bev.get(), EV_READ);
  }
  static void onRead(bufferevent* b, void* self) {
    auto* peer = static_cast<Peer*>(self);
    evbuffer* in = bufferevent_get_input(b);
    std::size_t n = evbuffer_get_length(in);
    std::size_t at = peer->received.size();
    peer->received.resize(at + n);
    evbuffer_remove(in, peer->received.data() + at, n);
  }
  static void onEvent(bufferevent*, short what, void* self) {
    auto* peer = static_cast<Peer*>(self);
    if ((what & BEV_EVENT_CONNECTED) != 0) {
      peer->connected = true;
    }
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
      peer->closed = true;
    }
  }
};

// An AdmissionDecider the test controls: answers at once through the policy, after a delay, or
// never; records whether a pending decision was cancelled.
class ScriptedDecider final : public AdmissionDecider {
 public:
  enum class Mode { Policy, Delayed, Never };

  ScriptedDecider(event_base* base, const config::IdentityPolicy& policy)
      : base_(base), policy_(policy) {}

  Mode mode = Mode::Policy;
  std::chrono::milliseconds delay{100};
  int decisions = 0;
  int cancelled = 0;
  int answered_late = 0;

  std::unique_ptr<PendingAdmission> decide(AdmissionRequest request,
                                           VerdictCallback done) override {
    ++decisions;
    if (mode == Mode::Policy) {
      return policy_.decide(std::move(request), std::move(done));
    }
    auto pending = std::make_unique<Pending>(*this, std::move(request), std::move(done));
    if (mode == Mode::Delayed) {
      timeval tv{0, static_cast<suseconds_t>(delay.count() * 1000)};
      pending->timer.reset(evtimer_new(base_, &Pending::fire, pending.get()));
      evtimer_add(pending->timer.get(), &tv);
    }
    return pending;
  }

 private:
  struct Pending final : PendingAdmission {
    Pending(ScriptedDecider& d, AdmissionRequest r, VerdictCallback cb)
        : decider(d), request(std::move(r)), done(std::move(cb)) {}
    ~Pending() override {
      if (!answered) {
        ++decider.cancelled;
      }
    }
    static void fire(evutil_socket_t, short, void* self) {
      auto* pending = static_cast<Pending*>(self);
      pending->answered = true;
      ++pending->decider.answered_late;
      // The policy answers at once; pass its verdict on from here, i.e. later.
      VerdictCallback done = pending->done;
      pending->decider.policy_.decide(std::move(pending->request), std::move(done));
    }
    ScriptedDecider& decider;
    AdmissionRequest request;
    VerdictCallback done;
    EventPtr timer;
    bool answered = false;
  };

  event_base* base_;
  PolicyDecider policy_;
};

class NetTest : public ::testing::Test, public ConnectionHost {
 protected:
  void SetUp() override;
  void TearDown() override;

  // ConnectionHost
  event_base* base() override { return base_.get(); }
  evdns_base* dns() override { return dns_.get(); }
  const config::Config& config() const override { return config_; }
  ops::Metrics& metrics() override { return metrics_; }
  AdmissionDecider& admission() override { return *decider_; }
  void release(Connection* connection) override;

  // Accepts a new client over a socketpair: `client` is the TLS client end.
  Connection* connect(const std::string& cert = "client.pem",
                      const std::string& key = "client.key");
  // Runs the loop until `done()` or `timeout`; returns done().
  bool runUntil(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(5));
  void runFor(std::chrono::milliseconds duration);
  // Sum of a counter family's values whose labels include `label`=`value` (all when empty).
  double counter(const std::string& family, const std::string& label = {},
                 const std::string& value = {});
  // The first broker-side connection (after the broker accepted one).
  Peer& broker() { return *brokers_.front(); }
  bool brokerConnected() const { return !brokers_.empty(); }

  config::Config config_;
  ops::Metrics metrics_;
  EventBasePtr base_;
  DnsBasePtr dns_;
  std::unique_ptr<ScriptedDecider> decider_;
  tls::TlsContextPtr server_tls_;
  SSL_CTX* client_ctx_ = nullptr;
  Peer client;
  Connection* connection = nullptr;       // the live connection, null once released
  std::vector<ops::AccessRecord> closed;  // access records of released connections
  std::string broker_path_;
  ListenerPtr broker_listener_;
  std::vector<std::unique_ptr<Peer>> brokers_;

 private:
  std::map<Connection*, std::unique_ptr<Connection>> owned_;
};

// MQTT packets for the tests.
std::vector<std::uint8_t> connectV311(const std::string& client_id,
                                      const std::string& username = {});
std::vector<std::uint8_t> connectV5(const std::string& client_id);
std::vector<std::uint8_t> publishV5(const std::string& topic, const std::string& payload,
                                    const std::vector<std::pair<std::string, std::string>>& props);
std::vector<std::uint8_t> publishV311(const std::string& topic, const std::string& payload);

}  // namespace mqtls::net::testing

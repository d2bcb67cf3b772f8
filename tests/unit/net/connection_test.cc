// The connection state machine driven over a socketpair (TLS client) and a Unix socket (broker
// stand-in): states, admission that waits, deadlines, framed streaming and back-pressure.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "net/net_test_support.h"
#include "net/tcp_probe.h"

namespace mqtls::net::testing {
namespace {

using State = Connection::State;
using namespace std::chrono_literals;

bool contains(const std::vector<std::uint8_t>& haystack, const std::string& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

class ConnectionTest : public NetTest {
 protected:
  // Handshake, then send `connect`; returns once the broker saw the forwarded CONNECT.
  void connectThrough(const std::vector<std::uint8_t>& connect) {
    connect_bytes = connect;
    ASSERT_NE(this->connect(), nullptr);
    ASSERT_TRUE(runUntil([&] { return client.connected; })) << "handshake did not finish";
    client.send(connect);
    ASSERT_TRUE(runUntil([&] { return brokerConnected() && !broker().received.empty(); }));
    ASSERT_EQ(connection->state(), State::Streaming);
  }
  void brokerStopsReading(bool framed);
  std::vector<std::uint8_t> connect_bytes;
};

TEST_F(ConnectionTest, ForwardsTheRewrittenConnectThenBytesBothWays) {
  connectThrough(connectV311("dev", "admin"));
  EXPECT_TRUE(contains(broker().received, "device-001"));
  EXPECT_FALSE(contains(broker().received, "admin"));
  broker().send(std::vector<std::uint8_t>{0x20, 0x02, 0x00, 0x00});
  ASSERT_TRUE(runUntil([&] { return client.received.size() == 4; }));
  auto publish = publishV311("devices/device-001/t", "hello");
  client.send(publish);
  const std::size_t before = broker().received.size();
  ASSERT_TRUE(runUntil([&] { return broker().received.size() == before + publish.size(); }));
  EXPECT_EQ(counter("mqtls_mqtt_connect_forwarded_total"), 1);
  // The access record counts what the client sent, not the rewritten CONNECT.
  client.bev.reset();
  ASSERT_TRUE(runUntil([&] { return connection == nullptr; }));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].bytes_from_client, connect_bytes.size() + publish.size());
  EXPECT_EQ(closed[0].close_reason, "client_closed");
}

// Timers of the event loop armed right now whose callback is the proxy's own code, linked into
// this executable. Left out: libevent's own, such as the exit timer runUntil() leaves behind,
// told apart by their callbacks living in the shared libevent library (Debian's libevent is
// one; a static libevent would be counted). -1 if an address cannot be placed in an image.
int armedProxyTimers(event_base* base) {
  Dl_info here{};
  if (dladdr(reinterpret_cast<void*>(&armedProxyTimers), &here) == 0) {
    return -1;
  }
  struct Count {
    const void* image;
    int armed = 0;
  } count{here.dli_fbase};
  event_base_foreach_event(
      base,
      [](const event_base*, const event* ev, void* data) {
        auto* count = static_cast<Count*>(data);
        Dl_info where{};
        if (dladdr(reinterpret_cast<void*>(event_get_callback(ev)), &where) == 0) {
          count->armed = -1;
          return 1;  // stop: the answer would be a guess
        }
        if (event_pending(ev, EV_TIMEOUT, nullptr) != 0 && where.dli_fbase == count->image) {
          ++count->armed;
        }
        return 0;
      },
      &count);
  return count.armed;
}

// An idle connection costs no wake-ups: once streaming, neither the connection nor its streams
// keep a timer armed (the handshake, CONNECT and broker-connect deadlines are all gone).
TEST_F(ConnectionTest, AStreamingConnectionArmsNoTimer) {
  connectThrough(connectV311("idle"));
  client.received.clear();
  broker().send(std::vector<std::uint8_t>{0x20, 0x02, 0x00, 0x00});
  ASSERT_TRUE(runUntil([&] { return client.received.size() >= 4; }));
  runFor(50ms);
  EXPECT_EQ(connection->state(), State::Streaming);
  EXPECT_EQ(armedProxyTimers(base()), 0);
}

TEST_F(ConnectionTest, NonConnectFirstByteIsRefusedAtOnce) {
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(std::string("G"));  // the start of "GET / HTTP/1.0"
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil([&] { return connection == nullptr || client.closed; }, 2s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_FALSE(brokerConnected());
  EXPECT_EQ(counter("mqtls_mqtt_connect_refused_total", "reason", "first_packet_not_connect"), 1);
}

TEST_F(ConnectionTest, AdmissionMayAnswerLater) {
  decider_->mode = ScriptedDecider::Mode::Delayed;
  decider_->delay = 200ms;
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(connectV311("dev"));
  ASSERT_TRUE(runUntil([&] { return connection->state() == State::Admitting; }));
  runFor(100ms);
  EXPECT_EQ(connection->state(), State::Admitting);
  EXPECT_FALSE(brokerConnected()) << "the broker must not be dialled before the decision";
  ASSERT_TRUE(runUntil([&] { return brokerConnected() && !broker().received.empty(); }));
  EXPECT_EQ(connection->state(), State::Streaming);
  EXPECT_EQ(decider_->answered_late, 1);
  EXPECT_EQ(decider_->cancelled, 0);
}

TEST_F(ConnectionTest, AdmissionCancelledWhenTheClientFails) {
  decider_->mode = ScriptedDecider::Mode::Delayed;
  decider_->delay = 300ms;
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(connectV311("dev"));
  ASSERT_TRUE(runUntil([&] { return connection->state() == State::Admitting; }));
  // A record that fails authentication: the client's TLS stream errors.
  const char garbage[] = "\x17\x03\x03\x00\x05hello";
  ASSERT_EQ(::write(bufferevent_getfd(client.bev.get()), garbage, sizeof garbage - 1), 10);
  ASSERT_TRUE(runUntil([&] { return connection == nullptr; }));
  EXPECT_EQ(decider_->cancelled, 1);
  runFor(400ms);  // past the delay: the decider must not call back into a dead connection
  EXPECT_EQ(decider_->answered_late, 0);
  EXPECT_FALSE(brokerConnected());
  EXPECT_EQ(closed.at(0).close_reason, "client_closed_before_connack");
}

TEST_F(ConnectionTest, AdmissionThatNeverAnswersTimesOut) {
  decider_->mode = ScriptedDecider::Mode::Never;
  config_.limits.admission_timeout = 300ms;
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(connectV311("dev"));
  ASSERT_TRUE(runUntil([&] { return client.received.size() >= 4; }, 3s));
  EXPECT_EQ(client.received, (std::vector<std::uint8_t>{0x20, 0x02, 0x00, 0x03}));
  EXPECT_EQ(decider_->cancelled, 1);
  EXPECT_FALSE(brokerConnected());
  ASSERT_TRUE(runUntil([&] { return connection == nullptr; }));
  EXPECT_EQ(closed.at(0).close_reason, "admission_timeout");
}

TEST_F(ConnectionTest, DrainShutdownCancelsAPendingAdmission) {
  decider_->mode = ScriptedDecider::Mode::Never;
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(connectV311("dev"));
  ASSERT_TRUE(runUntil([&] { return connection->state() == State::Admitting; }));
  connection->dispatch(Connection::Event::Shutdown);
  EXPECT_EQ(connection, nullptr);
  EXPECT_EQ(decider_->cancelled, 1);
  EXPECT_EQ(closed.at(0).close_reason, "shutdown");
}

// Shared by the byte-for-byte and the framed path: back-pressure holds in both.
void ConnectionTest::brokerStopsReading(bool framed) {
  config_.limits.buffer_limit = 64 * 1024;
  config_.limits.frame_client_packets = framed;
  connectThrough(connectV311("dev"));
  const std::size_t after_connect = broker().received.size();
  broker().stopReading();
  const std::string payload(16 * 1024, 'x');
  auto publish = publishV311("t", payload);
  const std::size_t count = 512;  // 8 MiB in all
  for (std::size_t i = 0; i < count; ++i) {
    client.send(publish);
  }
  runFor(500ms);
  const double forwarded = counter("mqtls_forwarded_bytes_total", "direction", "client_to_broker");
  // What moved is the limit plus what the kernel buffers hold, far less than what was sent.
  EXPECT_LT(forwarded, 3.0 * 1024 * 1024);
  broker().startReading();
  const std::size_t expected = after_connect + count * publish.size();
  ASSERT_TRUE(runUntil([&] { return broker().received.size() >= expected; }, 20s))
      << broker().received.size() << " of " << expected;
  EXPECT_EQ(broker().received.size(), expected);
}

TEST_F(ConnectionTest, BrokerThatStopsReadingPausesTheClient) {
  brokerStopsReading(false);
}

TEST_F(ConnectionTest, BrokerThatStopsReadingPausesAFramedClient) {
  brokerStopsReading(true);
}

TEST_F(ConnectionTest, ClientThatStopsReadingPausesTheBroker) {
  config_.limits.buffer_limit = 64 * 1024;
  connectThrough(connectV311("dev"));
  client.stopReading();
  const std::string chunk(64 * 1024, 'y');
  const std::size_t count = 128;  // 8 MiB
  for (std::size_t i = 0; i < count; ++i) {
    broker().send(chunk);
  }
  runFor(500ms);
  EXPECT_LT(counter("mqtls_forwarded_bytes_total", "direction", "broker_to_client"),
            3.0 * 1024 * 1024);
  client.startReading();
  ASSERT_TRUE(runUntil([&] { return client.received.size() >= count * chunk.size(); }, 20s));
  EXPECT_EQ(client.received.size(), count * chunk.size());
}

TEST_F(ConnectionTest, FramedPublishLosesForgedPropertiesAndCarriesTheIdentity) {
  config_.identity.publish_properties = {{config::IdentitySource::Cn, "x-cert-cn"}};
  connectThrough(connectV5("dev"));
  const std::size_t after_connect = broker().received.size();
  client.send(publishV5("t", "payload", {{"x-cert-cn", "admin"}, {"keep", "me"}}));
  ASSERT_TRUE(runUntil([&] { return contains(broker().received, "payload"); }));
  std::vector<std::uint8_t> forwarded(broker().received.begin() + after_connect,
                                      broker().received.end());
  EXPECT_FALSE(contains(forwarded, "admin"));
  EXPECT_TRUE(contains(forwarded, "keep"));
  EXPECT_TRUE(contains(forwarded, "x-cert-cn"));
  EXPECT_TRUE(contains(forwarded, "device-001"));
}

TEST_F(ConnectionTest, FramedMalformedPublishGetsDisconnect0x81) {
  config_.identity.publish_properties = {{config::IdentitySource::Cn, "x-cert-cn"}};
  connectThrough(connectV5("dev"));
  // PUBLISH QoS 3 is malformed.
  client.send(std::vector<std::uint8_t>{0x36, 0x04, 0x00, 0x01, 't', 0x00});
  ASSERT_TRUE(runUntil([&] { return client.received.size() >= 3; }));
  EXPECT_EQ(client.received[0], 0xE0);  // DISCONNECT
  EXPECT_EQ(client.received[2], 0x81);
  ASSERT_TRUE(runUntil([&] { return connection == nullptr; }));
  EXPECT_EQ(closed.at(0).close_reason, "packet_refused");
}

TEST_F(ConnectionTest, V311ClientsStreamByteForByte) {
  config_.identity.publish_properties = {{config::IdentitySource::Cn, "x-cert-cn"}};
  connectThrough(connectV311("dev"));
  const std::size_t after_connect = broker().received.size();
  auto publish = publishV311("t", "x-cert-cn admin");
  client.send(publish);
  ASSERT_TRUE(runUntil([&] { return broker().received.size() == after_connect + publish.size(); }));
  EXPECT_TRUE(
      std::equal(publish.begin(), publish.end(), broker().received.begin() + after_connect));
}

TEST_F(ConnectionTest, FailedHandshakeLingersUntilTheClientCloses) {
  ASSERT_NE(connect("", ""), nullptr);  // no client certificate: refused
  ASSERT_TRUE(
      runUntil([&] { return connection == nullptr || connection->state() == State::Lingering; }));
  ASSERT_NE(connection, nullptr) << "closed at once: the client would see a reset";
  EXPECT_EQ(counter("mqtls_tls_handshake_failures_total"), 1);
  client.bev.reset();  // the client reads the alert and closes
  ASSERT_TRUE(runUntil([&] { return connection == nullptr; }));
  EXPECT_EQ(closed.at(0).close_reason, "handshake_failed");
}

TEST_F(ConnectionTest, BrokerDownGivesServerUnavailable) {
  broker_listener_.reset();
  ::unlink(broker_path_.c_str());
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(connectV311("dev"));
  ASSERT_TRUE(runUntil([&] { return client.received.size() >= 4; }));
  EXPECT_EQ(client.received, (std::vector<std::uint8_t>{0x20, 0x02, 0x00, 0x03}));
  EXPECT_EQ(counter("mqtls_upstream_connect_failures_total"), 1);
}

// A broker too slow to accept, its Unix backlog full until the connect timeout runs out: the
// broker stream gives up on its own, a pause before the connection's deadline, and the failure
// still counts as a timeout.
TEST_F(ConnectionTest, BrokerBacklogFullUntilTheConnectTimeoutCountsATimeout) {
  broker_listener_.reset();
  ::unlink(broker_path_.c_str());
  std::vector<OwnedFd> held;  // the never-accepting listener and the connections it queued
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", broker_path_.c_str());
  held.emplace_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::bind(held[0].fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(held[0].fd, 0), 0);
  bool full = false;
  for (int parked = 0; parked < 64 && !full; ++parked) {
    held.emplace_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    full = ::connect(held.back().fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
           errno == EAGAIN;
  }
  ASSERT_TRUE(full) << "the backlog never filled";
  config_.upstream.connect_timeout = 300ms;
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(connectV311("patient"));
  ASSERT_TRUE(runUntil([&] { return client.received.size() >= 4; }));
  EXPECT_EQ(client.received, (std::vector<std::uint8_t>{0x20, 0x02, 0x00, 0x03}));
  EXPECT_EQ(counter("mqtls_upstream_connect_failures_total", "reason", "timeout"), 1);
  EXPECT_EQ(counter("mqtls_upstream_connect_failures_total", "reason", "error"), 0);
  ASSERT_TRUE(runUntil([&] { return !closed.empty(); }));
  EXPECT_EQ(closed.at(0).close_reason, "broker_unavailable");
  // The stream gives up a pause before the connection's deadline and says what it met; on a
  // machine slow enough (a sanitizer build) the deadline may end it first, which says less.
  const std::string& detail = closed.at(0).detail;
  EXPECT_EQ(detail.rfind("broker connect timed out", 0), 0u) << detail;
  if (detail != "broker connect timed out") {
    EXPECT_NE(detail.find("backlog full"), std::string::npos) << detail;
  }
}

TEST_F(ConnectionTest, OversizedConnectThenCleanCloseEndsOnce) {
  // A fixed header announcing 256 MiB, the level not yet known, then a clean close: the refusal
  // sends nothing and the stream finishes with nothing to flush.
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  client.send(std::vector<std::uint8_t>{0x10, 0xff, 0xff, 0xff, 0x7f});
  runFor(50ms);
  client.bev.reset();
  ASSERT_TRUE(runUntil([&] { return connection == nullptr; }));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].close_reason, "connect_too_large");
}

TEST_F(ConnectionTest, FramedMalformedPacketRightAfterConnectAndClose) {
  config_.limits.frame_client_packets = true;
  ASSERT_NE(connect(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client.connected; }));
  auto bytes = connectV311("dev");
  bytes.insert(bytes.end(), {0x30, 0xff, 0xff, 0xff, 0xff});  // a five-byte length: malformed
  client.send(bytes);
  ASSERT_TRUE(
      runUntil([&] { return evbuffer_get_length(bufferevent_get_output(client.bev.get())) == 0; }));
  client.bev.reset();  // the close follows the bytes at once, before the broker is connected
  ASSERT_TRUE(runUntil([&] { return connection == nullptr; }));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].close_reason, "packet_refused");
}

TEST_F(ConnectionTest, FramedPathStreamsPacketsItDoesNotRewriteWhateverTheirSize) {
  config_.limits.frame_client_packets = true;
  config_.limits.max_rewritten_packet = 64 * 1024;
  connectThrough(connectV311("dev"));
  const std::size_t after_connect = broker().received.size();
  auto publish = publishV311("t", std::string(3 * 1024 * 1024, 'z'));
  client.send(publish);
  ASSERT_TRUE(runUntil([&] { return broker().received.size() == after_connect + publish.size(); }));
  EXPECT_TRUE(
      std::equal(publish.begin(), publish.end(), broker().received.begin() + after_connect));
}

TEST_F(ConnectionTest, RewrittenPacketOverTheLimitGetsDisconnect0x95) {
  config_.identity.publish_properties = {{config::IdentitySource::Cn, "x-cert-cn"}};
  config_.limits.max_rewritten_packet = 64 * 1024;
  connectThrough(connectV5("dev"));
  client.send(publishV5("t", std::string(128 * 1024, 'z'), {}));
  ASSERT_TRUE(runUntil([&] { return client.received.size() >= 3; }));
  EXPECT_EQ(client.received[0], 0xE0);
  EXPECT_EQ(client.received[2], 0x95);
}

TEST(ConnectionStates, TransitionsFollowTheDiagram) {
  EXPECT_TRUE(Connection::legalTransition(State::Handshaking, State::AwaitingConnect));
  EXPECT_TRUE(Connection::legalTransition(State::AwaitingConnect, State::Admitting));
  EXPECT_TRUE(Connection::legalTransition(State::Admitting, State::Dialing));
  EXPECT_TRUE(Connection::legalTransition(State::Dialing, State::Streaming));
  EXPECT_TRUE(Connection::legalTransition(State::Streaming, State::Flushing));
  EXPECT_TRUE(Connection::legalTransition(State::Flushing, State::Lingering));
  EXPECT_TRUE(Connection::legalTransition(State::Lingering, State::Closed));
  EXPECT_FALSE(Connection::legalTransition(State::Handshaking, State::Streaming));
  EXPECT_FALSE(Connection::legalTransition(State::AwaitingConnect, State::Dialing));
  EXPECT_FALSE(Connection::legalTransition(State::Streaming, State::Admitting));
  EXPECT_FALSE(Connection::legalTransition(State::Closed, State::Closed));
}

}  // namespace
}  // namespace mqtls::net::testing

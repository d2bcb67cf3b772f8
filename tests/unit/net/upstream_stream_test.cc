// Dialling the broker: every address a name resolves to is tried in turn.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "net/net_test_support.h"
#include "net/tcp_probe.h"
#include "net/upstream_stream.h"

namespace mqtls::net::testing {
namespace {

using namespace std::chrono_literals;

struct Recorder final : StreamObserver {
  std::vector<StreamEvent> events;
  std::function<void(Stream&, StreamEvent)> also;  // the test's own reaction, if any
  void onStreamEvent(Stream& stream, StreamEvent event) override {
    events.push_back(event);
    if (also) {
      also(stream, event);
    }
  }
};

// The broker at `host`:`port`, given up on after `timeout`.
config::Upstream brokerAt(const std::string& host, std::uint16_t port,
                          config::Duration timeout = config::Upstream{}.connect_timeout) {
  config::Upstream upstream;
  upstream.host = host;
  upstream.port = port;
  upstream.connect_timeout = timeout;
  return upstream;
}

class UpstreamStreamTest : public NetTest {
 protected:
  // A TCP listener on 127.0.0.1 that accepts; returns its port.
  std::uint16_t listenTcp() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    tcp_.reset(evconnlistener_new_bind(
        base(),
        [](evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* self) {
          ++static_cast<UpstreamStreamTest*>(self)->accepted_;
          evutil_closesocket(fd);
        },
        this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, reinterpret_cast<sockaddr*>(&addr),
        sizeof addr));
    socklen_t len = sizeof addr;
    getsockname(evconnlistener_get_fd(tcp_.get()), reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }
  // Makes `name` resolve to `addresses`, in this order, through a hosts file.
  void resolve(const std::string& name, const std::vector<std::string>& addresses) {
    const std::string path = broker_path_ + ".hosts";
    std::ofstream hosts(path);
    for (const auto& address : addresses) {
      hosts << address << " " << name << "\n";
    }
    hosts.close();
    ASSERT_EQ(evdns_base_load_hosts(dns(), path.c_str()), 0);
    ::unlink(path.c_str());
  }
  // Dials a loopback listener with `stream` until Connected; `broker` gets the accepted socket,
  // whose reads give up after 5 s rather than hang.
  void dialLoopbackBroker(UpstreamStream& stream, Recorder& recorder, OwnedFd& broker) {
    std::uint16_t port = 0;
    const OwnedFd listener(listenLoopback(port));
    ASSERT_GE(listener.fd, 0);
    stream.dial(brokerAt("127.0.0.1", port));
    ASSERT_TRUE(runUntil([&] { return !recorder.events.empty(); }));
    ASSERT_EQ(recorder.events.front(), StreamEvent::Connected) << stream.closeDetail();
    const timeval bound{5, 0};
    ::setsockopt(listener.fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);  // accept, too
    broker = OwnedFd(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_GE(broker.fd, 0) << "connected, yet nothing to accept";
    ::setsockopt(broker.fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
  }

  ListenerPtr tcp_;
  int accepted_ = 0;
};

TEST_F(UpstreamStreamTest, TriesTheNextAddressWhenTheFirstRefuses) {
  const std::uint16_t port = listenTcp();
  // 127.0.0.2 is loopback too, but nothing listens there on this port: refused at once.
  resolve("broker.test", {"127.0.0.2", "127.0.0.1"});
  Recorder recorder;
  UpstreamStream stream(recorder, base(), dns());
  stream.dial(brokerAt("broker.test", port, 2s));
  EXPECT_TRUE(recorder.events.empty()) << "events must never arrive from inside dial()";
  ASSERT_TRUE(runUntil([&] { return !recorder.events.empty(); }));
  EXPECT_EQ(recorder.events.front(), StreamEvent::Connected) << stream.closeDetail();
  EXPECT_EQ(stream.peerAddress(), "127.0.0.1:" + std::to_string(port));
}

TEST_F(UpstreamStreamTest, EveryAddressFailingReportsEachAttempt) {
  const std::uint16_t port = listenTcp();
  tcp_.reset();  // nothing listens any more
  resolve("broker.test", {"127.0.0.2", "127.0.0.3"});
  Recorder recorder;
  UpstreamStream stream(recorder, base(), dns());
  stream.dial(brokerAt("broker.test", port));
  ASSERT_TRUE(runUntil([&] { return !recorder.events.empty(); }));
  EXPECT_EQ(recorder.events.front(), StreamEvent::Closed);
  EXPECT_EQ(stream.closeKind(), CloseKind::Error);
  EXPECT_NE(stream.closeDetail().find("127.0.0.2"), std::string::npos) << stream.closeDetail();
  EXPECT_NE(stream.closeDetail().find("127.0.0.3"), std::string::npos) << stream.closeDetail();
  EXPECT_FALSE(stream.timedOut()) << "refused everywhere is not a timeout";
}

// A broker that stopped answering: the stream gives up when connect_timeout runs out and says it
// timed out, so its owner counts a timeout even when this comes before its own deadline.
TEST_F(UpstreamStreamTest, AnAttemptThatRunsOutOfTimeSaysItTimedOut) {
  std::vector<OwnedFd> held;
  const std::uint16_t port = hangingLoopbackPort(held);
  if (port == 0) {
    GTEST_SKIP() << "this TCP stack completes every connect to a full accept queue";
  }
  Recorder recorder;
  UpstreamStream stream(recorder, base(), dns());
  const auto started = std::chrono::steady_clock::now();
  stream.dial(brokerAt("127.0.0.1", port, 300ms));
  ASSERT_TRUE(runUntil([&] { return !recorder.events.empty(); }));
  EXPECT_EQ(recorder.events.front(), StreamEvent::Closed);
  EXPECT_TRUE(stream.timedOut()) << stream.closeDetail();
  EXPECT_NE(stream.closeDetail().find("timed out"), std::string::npos) << stream.closeDetail();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
}

// Closing towards the broker (a client's DISCONNECT, then the write shutdown) costs the broker
// one segment to receive, not two: the last bytes wait for the FIN.
TEST_F(UpstreamStreamTest, TheLastBytesAndTheFinLeaveInOneSegment) {
  Recorder recorder;
  UpstreamStream stream(recorder, base(), dns());
  OwnedFd broker;
  ASSERT_NO_FATAL_FAILURE(dialLoopbackBroker(stream, recorder, broker));
  const std::uint32_t before = segmentsIn(broker.fd);

  const std::string disconnect("\xe0\x00", 2);
  evbuffer_add(stream.output(), disconnect.data(), disconnect.size());
  stream.finish();
  ASSERT_TRUE(runUntil([&] { return stream.finished(); }));
  std::string got(16, '\0');
  ASSERT_EQ(::recv(broker.fd, got.data(), got.size(), 0), 2);
  EXPECT_EQ(got.substr(0, 2), disconnect);
  EXPECT_EQ(::recv(broker.fd, got.data(), got.size(), 0), 0) << "then the FIN";
  EXPECT_EQ(segmentsIn(broker.fd) - before, 1u) << "the bytes and the FIN left apart";
}

// A broker that answers with a refusing CONNACK and resets the connection: the write that meets
// the reset fails, and the CONNACK that arrived before it is still delivered, before the close.
TEST_F(UpstreamStreamTest, WhatTheBrokerSentBeforeAResetArrivesWhenAWriteFails) {
  Recorder recorder;
  UpstreamStream stream(recorder, base(), dns());
  OwnedFd broker;
  ASSERT_NO_FATAL_FAILURE(dialLoopbackBroker(stream, recorder, broker));
  CloseKind when_read = CloseKind::None;
  recorder.also = [&](Stream& s, StreamEvent event) {
    if (event == StreamEvent::Readable) {
      when_read = s.closeKind();
    }
  };

  const std::string refusal("\x20\x02\x00\x05", 4);  // CONNACK: not authorized
  ASSERT_EQ(::send(broker.fd, refusal.data(), refusal.size(), 0), 4);
  const linger reset{1, 0};
  ::setsockopt(broker.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  broker.reset();  // RST: the stream's next write fails
  const std::string publish("\x30\x03\x00\x01t", 5);
  evbuffer_add(stream.output(), publish.data(), publish.size());  // written before any read

  ASSERT_TRUE(runUntil([&] { return recorder.events.back() == StreamEvent::Closed; }));
  EXPECT_EQ(recorder.events,
            (std::vector<StreamEvent>{StreamEvent::Connected, StreamEvent::Readable,
                                      StreamEvent::Closed}));
  // Delivered by the failed write's own read (the stream already knew it was broken), not by a
  // later readiness, which would have read it as on any open stream.
  EXPECT_EQ(when_read, CloseKind::Error) << "the bytes came by the ordinary read";
  std::string got(evbuffer_get_length(stream.input()), '\0');
  evbuffer_copyout(stream.input(), got.data(), got.size());
  EXPECT_EQ(got, refusal);
  EXPECT_EQ(stream.closeKind(), CloseKind::Error);
}

TEST_F(UpstreamStreamTest, DestroyingTheStreamWhileResolvingIsSafe) {
  Recorder recorder;
  {
    UpstreamStream stream(recorder, base(), dns());
    config::Upstream upstream;
    upstream.host = "slow.invalid";  // no name server here: the query stays pending
    stream.dial(upstream);
  }
  runFor(100ms);
  EXPECT_TRUE(recorder.events.empty());
}

}  // namespace
}  // namespace mqtls::net::testing

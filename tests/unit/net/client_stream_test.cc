// The client's TLS stream over a real socket: a TLS client driven by hand on the other end of a
// socketpair, the stream on the test's event loop.
#include "net/client_stream.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "net/net_test_support.h"
#include "net/tcp_probe.h"

namespace mqtls::net::testing {
namespace {

struct Recorder final : StreamObserver {
  std::vector<StreamEvent> events;
  std::function<void(Stream&, StreamEvent)> also;  // the test's own reaction, if any
  void onStreamEvent(Stream& stream, StreamEvent event) override {
    events.push_back(event);
    if (also) {
      also(stream, event);
    }
  }
  bool saw(StreamEvent event) const {
    return std::find(events.begin(), events.end(), event) != events.end();
  }
};

constexpr std::size_t kReadBudget = 64 * 1024;  // Stream's bytes per readiness

class ClientTlsStreamTest : public NetTest {
 protected:
  void TearDown() override {
    stream_.reset();
    client_.reset();
    if (client_fd_ >= 0) {
      ::close(client_fd_);  // the SSL's socket BIO does not own it
    }
    NetTest::TearDown();
  }

  // Handshakes a client (client.pem) with a fresh stream, over a socketpair or loopback TCP.
  void open(bool tcp = false) {
    int fds[2];
    if (tcp) {
      const TcpPair pair = tcpPair();
      ASSERT_GE(pair.near, 0);
      fds[0] = pair.near;
      fds[1] = pair.far;
    } else {
      ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    }
    const int big = 4 << 20;  // the kernel caps it; what matters is several read budgets
    setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    client_fd_ = fds[1];
    client_.reset(SSL_new(client_ctx_));
    ASSERT_TRUE(client_);
    SSL_use_certificate_chain_file(client_.get(), certPath("client.pem").c_str());
    SSL_use_PrivateKey_file(client_.get(), certPath("client.key").c_str(), SSL_FILETYPE_PEM);
    SSL_set_fd(client_.get(), client_fd_);
    SSL_set_connect_state(client_.get());
    sockaddr_un peer{};
    peer.sun_family = AF_UNIX;
    stream_ = std::make_unique<ClientTlsStream>(recorder_, base(), *server_tls_, fds[0],
                                                reinterpret_cast<sockaddr*>(&peer));
    ASSERT_TRUE(stream_->start());
    ASSERT_TRUE(runUntil([&] {
      SSL_do_handshake(client_.get());
      ERR_clear_error();
      return recorder_.saw(StreamEvent::Connected) && SSL_is_init_finished(client_.get());
    })) << stream_->closeDetail();
  }

  // Writes full records until the socket is full, without running the loop. Returns the
  // plaintext bytes OpenSSL accepted.
  std::size_t fillSocket() {
    const std::vector<char> record(16 * 1024, 'x');
    std::size_t written = 0;
    for (;;) {
      const int rc = SSL_write(client_.get(), record.data(), static_cast<int>(record.size()));
      if (rc <= 0) {
        ERR_clear_error();
        return written;
      }
      written += static_cast<std::size_t>(rc);
    }
  }

  std::size_t received() const { return evbuffer_get_length(stream_->input()); }

  // Reads on the client until the stream's close: it must be a close_notify (not a reset), after
  // a session ticket that makes the session resumable.
  void expectCloseNotifyAfterTicket() {
    char byte = 0;
    int rc = 0;
    ASSERT_TRUE(runUntil([&] {
      rc = SSL_read(client_.get(), &byte, 1);
      return rc <= 0 && SSL_get_error(client_.get(), rc) != SSL_ERROR_WANT_READ;
    }));
    EXPECT_EQ(SSL_get_error(client_.get(), rc), SSL_ERROR_ZERO_RETURN);
    EXPECT_EQ(SSL_SESSION_is_resumable(SSL_get0_session(client_.get())), 1);
  }

  // Writes `count` records of `size` plaintext bytes each, as a device writes one packet per
  // SSL_write. Returns the plaintext bytes written.
  std::size_t writeSmallRecords(int count, std::size_t size) {
    const std::string packet(size, 'p');
    std::size_t written = 0;
    for (int i = 0; i < count; ++i) {
      const int rc = SSL_write(client_.get(), packet.data(), static_cast<int>(packet.size()));
      EXPECT_EQ(rc, static_cast<int>(size));
      written += rc > 0 ? static_cast<std::size_t>(rc) : 0;
    }
    return written;
  }

  // Bytes that look like an application-data record but do not authenticate.
  void writeForgedRecord() {
    std::vector<unsigned char> forged = {0x17, 0x03, 0x03, 0x00, 0x40};
    forged.resize(forged.size() + 0x40, 0xA5);
    ASSERT_EQ(::send(client_fd_, forged.data(), forged.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(forged.size()));
  }

  Recorder recorder_;
  SslPtr client_;
  int client_fd_ = -1;
  std::unique_ptr<ClientTlsStream> stream_;
};

TEST_F(ClientTlsStreamTest, OneReadinessReadsAtMostTheBudgetAndTheRestFollows) {
  open();
  const std::size_t sent = fillSocket();
  ASSERT_GT(sent, 3 * kReadBudget) << "the socket buffer holds too little for this test";
  // One loop turn: the stream takes one budget, however much the client has queued, so that
  // other connections on the worker get their turn.
  event_base_loop(base(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
  EXPECT_GT(received(), 0U);
  EXPECT_LE(received(), kReadBudget);
  // ... and what OpenSSL read ahead beyond it waits for a later turn.
  EXPECT_EQ(SSL_has_pending(stream_->ssl()), 1);
  // The rest arrives on later turns, including what OpenSSL read ahead of the budget.
  EXPECT_TRUE(runUntil([&] {
    if (SSL_has_pending(client_.get()) == 0) {
      fillSocket();  // flushes the record left pending when the socket was full
    }
    return received() >= sent;
  })) << received()
      << " of " << sent;
  EXPECT_FALSE(recorder_.saw(StreamEvent::Closed)) << stream_->closeDetail();
}

TEST_F(ClientTlsStreamTest, AForgedRecordAfterGoodOnesDeliversTheirBytesThenAnErrorClose) {
  open();
  const std::size_t sent = writeSmallRecords(5, 70);
  writeForgedRecord();
  ASSERT_TRUE(runUntil([&] { return recorder_.saw(StreamEvent::Closed); }));
  EXPECT_EQ(received(), sent) << "the records before the forged one count";
  const auto readable =
      std::find(recorder_.events.begin(), recorder_.events.end(), StreamEvent::Readable);
  const auto closed =
      std::find(recorder_.events.begin(), recorder_.events.end(), StreamEvent::Closed);
  EXPECT_LT(readable, closed);
  EXPECT_EQ(stream_->closeKind(), CloseKind::Error);
  EXPECT_NE(stream_->closeDetail().find("tls error"), std::string::npos) << stream_->closeDetail();
}

TEST_F(ClientTlsStreamTest, AFailureBehindBytesWaitsWhileReadingIsPausedAndFollowsOnResume) {
  open();
  recorder_.also = [](Stream& stream, StreamEvent event) {
    if (event == StreamEvent::Readable) {
      stream.pauseReading();  // as a connection does when the other side cannot take more
    }
  };
  const std::size_t sent = writeSmallRecords(5, 70);
  writeForgedRecord();
  ASSERT_TRUE(runUntil([&] { return received() > 0; }));
  runFor(std::chrono::milliseconds(50));
  EXPECT_FALSE(recorder_.saw(StreamEvent::Closed)) << "a paused stream reports nothing more";
  recorder_.also = nullptr;
  stream_->resumeReading();
  ASSERT_TRUE(runUntil([&] { return recorder_.saw(StreamEvent::Closed); }));
  EXPECT_EQ(received(), sent);
  EXPECT_EQ(stream_->closeKind(), CloseKind::Error) << stream_->closeDetail();
}

TEST_F(ClientTlsStreamTest, CloseNotifyBehindABurstIsACleanCloseAfterEveryByte) {
  open();
  const std::size_t sent = writeSmallRecords(1000, 70);  // more than one read budget
  ASSERT_GT(sent, kReadBudget);
  SSL_shutdown(client_.get());
  ASSERT_TRUE(runUntil([&] { return recorder_.saw(StreamEvent::Closed); }));
  EXPECT_EQ(received(), sent);
  EXPECT_EQ(stream_->closeKind(), CloseKind::Clean) << stream_->closeDetail();
}

TEST_F(ClientTlsStreamTest, FinishFlushesThenSendsCloseNotify) {
  open();
  const std::string reply = "broker says hello";
  evbuffer_add(stream_->output(), reply.data(), reply.size());
  stream_->finish();
  ASSERT_TRUE(runUntil([&] { return recorder_.saw(StreamEvent::Finished); }));
  std::string got(reply.size() + 16, '\0');
  int rc = 0;
  ASSERT_TRUE(runUntil([&] {
    rc = SSL_read(client_.get(), got.data(), static_cast<int>(got.size()));
    return rc > 0;
  }));
  got.resize(static_cast<std::size_t>(rc));
  EXPECT_EQ(got, reply);
  // Then a clean close_notify, not a reset.
  ASSERT_TRUE(runUntil([&] {
    rc = SSL_read(client_.get(), got.data(), static_cast<int>(got.size()));
    return rc <= 0 && SSL_get_error(client_.get(), rc) != SSL_ERROR_WANT_READ;
  }));
  EXPECT_EQ(SSL_get_error(client_.get(), rc), SSL_ERROR_ZERO_RETURN);
  // The client closes: the stream reports a clean close.
  SSL_shutdown(client_.get());
  ::shutdown(client_fd_, SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return recorder_.saw(StreamEvent::Closed); }));
  EXPECT_EQ(stream_->closeKind(), CloseKind::Clean) << stream_->closeDetail();
}

// Bytes waiting on the client's end of the socket, without reading them.
std::size_t pendingAt(int fd) {
  char probe[4096];
  const ssize_t n = ::recv(fd, probe, sizeof probe, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

// A TLS 1.3 session ticket is not sent on its own once the handshake is done: it waits for the
// stream's first reply and leaves with it, and the client can resume with it.
TEST_F(ClientTlsStreamTest, TheTls13TicketLeavesWithTheFirstReply) {
  open();
  runFor(std::chrono::milliseconds(50));
  EXPECT_EQ(pendingAt(client_fd_), 0u) << "the ticket was sent on its own";
  const std::string reply = "connack";
  evbuffer_add(stream_->output(), reply.data(), reply.size());  // flushed on this loop turn
  ASSERT_TRUE(runUntil([&] { return pendingAt(client_fd_) > 0; }));
  std::string got(64, '\0');
  int rc = 0;
  ASSERT_TRUE(runUntil([&] {
    rc = SSL_read(client_.get(), got.data(), static_cast<int>(got.size()));
    return rc > 0;
  }));
  EXPECT_EQ(got.substr(0, static_cast<std::size_t>(rc)), reply);
  EXPECT_EQ(SSL_SESSION_is_resumable(SSL_get0_session(client_.get())), 1);
}

// A stream that closes without replying still hands the held ticket over before close_notify.
TEST_F(ClientTlsStreamTest, AHeldTicketLeavesWithTheClose) {
  open();
  stream_->finish();
  ASSERT_TRUE(runUntil([&] { return recorder_.saw(StreamEvent::Finished); }));
  ASSERT_NO_FATAL_FAILURE(expectCloseNotifyAfterTicket());
}

// A stream destroyed after a clean session (the client's DISCONNECT was its last word) sends the
// held ticket and close_notify in the segment that carries the FIN.
TEST_F(ClientTlsStreamTest, CloseNotifyOfAStreamDestroyedLeavesWithTheFin) {
  ASSERT_NO_FATAL_FAILURE(open(/*tcp=*/true));
  runFor(std::chrono::milliseconds(250));  // any delayed ACK has arrived
  const std::uint32_t before = segmentsIn(client_fd_);
  stream_.reset();
  ASSERT_NO_FATAL_FAILURE(expectCloseNotifyAfterTicket());
  char byte = 0;
  EXPECT_EQ(::recv(client_fd_, &byte, 1, 0), 0) << "then the FIN";
  EXPECT_EQ(segmentsIn(client_fd_) - before, 1u) << "close_notify and the FIN left apart";
}

TEST_F(ClientTlsStreamTest, OutputLargerThanTheSocketArrivesWholeAndInOrderThenCloseNotify) {
  open();
  // Far more than the socket takes at once: records are gathered, the socket fills, the held
  // records wait for writability, and close_notify comes only after the last of them.
  std::string reply(3 << 20, '\0');
  for (std::size_t i = 0; i < reply.size(); ++i) {
    reply[i] = static_cast<char>(i % 253);
  }
  evbuffer_add(stream_->output(), reply.data(), reply.size());
  stream_->finish();
  std::string got;
  std::vector<char> chunk(64 * 1024);
  int rc = 0;
  ASSERT_TRUE(runUntil([&] {
    for (;;) {
      rc = SSL_read(client_.get(), chunk.data(), static_cast<int>(chunk.size()));
      if (rc <= 0) {
        break;
      }
      got.append(chunk.data(), static_cast<std::size_t>(rc));
    }
    return SSL_get_error(client_.get(), rc) != SSL_ERROR_WANT_READ;
  })) << got.size()
      << " of " << reply.size();
  EXPECT_EQ(SSL_get_error(client_.get(), rc), SSL_ERROR_ZERO_RETURN) << "close_notify last";
  EXPECT_EQ(got.size(), reply.size());
  EXPECT_TRUE(got == reply) << "bytes arrived out of order or altered";
  EXPECT_TRUE(recorder_.saw(StreamEvent::Finished));
  EXPECT_FALSE(recorder_.saw(StreamEvent::Closed)) << stream_->closeDetail();
}

TEST_F(ClientTlsStreamTest, AKeyUpdateTheClientRequestsIsAnsweredThroughTheGatheredWrites) {
  open();
  // TLS 1.3: the client moves to new keys and asks the server to do the same. The server's
  // KeyUpdate is a handshake message OpenSSL writes itself, before the next record of data.
  ASSERT_EQ(SSL_version(client_.get()), TLS1_3_VERSION);
  ASSERT_EQ(SSL_key_update(client_.get(), SSL_KEY_UPDATE_REQUESTED), 1);
  const std::string ping = "PINGREQ";
  ASSERT_EQ(SSL_write(client_.get(), ping.data(), static_cast<int>(ping.size())),
            static_cast<int>(ping.size()));
  ASSERT_TRUE(runUntil([&] { return received() >= ping.size(); }));
  EXPECT_EQ(SSL_get_key_update_type(stream_->ssl()), SSL_KEY_UPDATE_NOT_REQUESTED)
      << "the server owes its KeyUpdate";
  const std::string pong = "PINGRESP";
  evbuffer_add(stream_->output(), pong.data(), pong.size());
  std::string got(64, '\0');
  int rc = 0;
  ASSERT_TRUE(runUntil([&] {
    rc = SSL_read(client_.get(), got.data(), static_cast<int>(got.size()));
    ERR_clear_error();
    return rc > 0;
  })) << "the answer did not arrive: "
      << stream_->closeDetail();
  got.resize(static_cast<std::size_t>(rc));
  EXPECT_EQ(got, pong);
  EXPECT_EQ(SSL_get_key_update_type(stream_->ssl()), SSL_KEY_UPDATE_NONE)
      << "the server's KeyUpdate went out with the answer";
  EXPECT_FALSE(recorder_.saw(StreamEvent::Closed)) << stream_->closeDetail();
}

TEST_F(ClientTlsStreamTest, AResetAfterTheClientsLastBytesIsACleanClose) {
  open();
  // The client writes and closes without reading what the server sent after the handshake (a
  // reply, and the session ticket that left with it): the kernel turns its close into a reset.
  const std::string reply = "CONNACK";
  evbuffer_add(stream_->output(), reply.data(), reply.size());
  ASSERT_TRUE(runUntil([&] { return pendingAt(client_fd_) > 0; }));
  const std::string last = "CONNECT+PUBLISH+DISCONNECT";
  ASSERT_EQ(SSL_write(client_.get(), last.data(), static_cast<int>(last.size())),
            static_cast<int>(last.size()));
  client_.reset();
  ::close(client_fd_);
  client_fd_ = -1;
  ASSERT_TRUE(runUntil([&] { return recorder_.saw(StreamEvent::Closed); }));
  EXPECT_EQ(received(), last.size()) << "the bytes before the reset are delivered";
  EXPECT_EQ(stream_->closeKind(), CloseKind::Clean) << stream_->closeDetail();
  EXPECT_EQ(stream_->closeDetail(), "connection reset by the client");
}

}  // namespace
}  // namespace mqtls::net::testing

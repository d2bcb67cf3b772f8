// The gathering socket BIO over a real socketpair: writes are held until a flush or the gather
// limit, leave in order, survive a full socket, and report a dead one; reads are a socket's.
#include "net/gathering_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

namespace mqtls::net::testing {
namespace {

class GatheringSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    ours_ = fds[0];
    peer_ = fds[1];
    socket_ = std::make_unique<GatheringSocket>(ours_);
    bio_ = socket_->newBio();
    ASSERT_NE(bio_, nullptr);
  }
  void TearDown() override {
    BIO_free(bio_);
    socket_.reset();
    ::close(ours_);
    if (peer_ >= 0) {
      ::close(peer_);
    }
  }

  // Everything the peer can read now.
  std::string drainPeer() {
    std::string got;
    char chunk[65536];
    for (;;) {
      const ssize_t n = ::recv(peer_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        return got;
      }
      got.append(chunk, static_cast<std::size_t>(n));
    }
  }

  int write(const std::string& bytes) {
    return BIO_write(bio_, bytes.data(), static_cast<int>(bytes.size()));
  }

  int ours_ = -1;
  int peer_ = -1;
  std::unique_ptr<GatheringSocket> socket_;
  BIO* bio_ = nullptr;
};

std::string pattern(std::size_t size, char seed) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>(seed + static_cast<char>(i % 251));
  }
  return bytes;
}

TEST_F(GatheringSocketTest, WritesAreHeldUntilAFlushThenLeaveInOrder) {
  const std::string first = pattern(16406, 'a');
  const std::string second = pattern(16406, 'b');
  const std::string third = "alert";
  EXPECT_EQ(write(first), static_cast<int>(first.size()));
  EXPECT_EQ(write(second), static_cast<int>(second.size()));
  EXPECT_EQ(write(third), static_cast<int>(third.size()));
  EXPECT_EQ(drainPeer(), "") << "nothing is sent before a flush";
  EXPECT_EQ(socket_->held(), first.size() + second.size() + third.size());
  EXPECT_EQ(static_cast<std::size_t>(BIO_wpending(bio_)), socket_->held());

  EXPECT_EQ(BIO_flush(bio_), 1);
  EXPECT_EQ(socket_->held(), 0U);
  EXPECT_EQ(drainPeer(), first + second + third);
}

TEST_F(GatheringSocketTest, AWriteBeyondTheGatherLimitSendsWhatIsHeldFirst) {
  const std::string held = pattern(GatheringSocket::kGatherBytes, 'c');
  ASSERT_EQ(write(held), static_cast<int>(held.size()));
  EXPECT_EQ(drainPeer(), "");
  const std::string next = "next record";
  ASSERT_EQ(write(next), static_cast<int>(next.size()));
  EXPECT_EQ(socket_->held(), next.size()) << "the full gather was sent, the new record is held";
  EXPECT_EQ(drainPeer(), held);
  EXPECT_EQ(socket_->flush(), GatheringSocket::Flush::Done);
  EXPECT_EQ(drainPeer(), next);
}

TEST_F(GatheringSocketTest, AFullSocketBlocksAndKeepsEveryByteForLater) {
  std::string sent;
  // Gather and flush until the socket takes no more.
  GatheringSocket::Flush flushed = GatheringSocket::Flush::Done;
  for (char seed = 'd'; flushed == GatheringSocket::Flush::Done; ++seed) {
    const std::string chunk = pattern(GatheringSocket::kGatherBytes, seed);
    ASSERT_EQ(write(chunk), static_cast<int>(chunk.size()));
    sent += chunk;
    flushed = socket_->flush();
  }
  ASSERT_EQ(flushed, GatheringSocket::Flush::Blocked);
  ASSERT_GT(socket_->held(), 0U);
  // Records are taken until the limit is held; past it a write cannot go on: OpenSSL is told to
  // retry it, and nothing is taken.
  const std::string record = pattern(16406, 'r');
  int taken = 0;
  while (taken < 8 && write(record) == static_cast<int>(record.size())) {
    sent += record;
    ++taken;
  }
  ASSERT_LT(taken, 8) << "a full socket never refused a write";
  EXPECT_TRUE(BIO_should_retry(bio_));
  EXPECT_TRUE(BIO_should_write(bio_));
  EXPECT_GE(socket_->held(), GatheringSocket::kGatherBytes);
  EXPECT_EQ(BIO_flush(bio_), -1);
  EXPECT_TRUE(BIO_should_retry(bio_) && BIO_should_write(bio_));
  // The peer reads; flushing again delivers the rest, in order.
  std::string got;
  while (socket_->held() > 0) {
    got += drainPeer();
    const auto again = socket_->flush();
    ASSERT_NE(again, GatheringSocket::Flush::Failed);
  }
  got += drainPeer();
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent) << "bytes arrived out of order or altered";
}

TEST_F(GatheringSocketTest, ASlowReaderCannotMakeTheBufferGrow) {
  // The peer reads a little at a time while records keep coming: each flush stops part way.
  const int small = 16 * 1024;
  setsockopt(ours_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const std::string record = pattern(16406, 's');
  std::string sent;
  std::string got;
  std::size_t largest = 0;
  char chunk[8192];
  for (int round = 0; round < 400; ++round) {
    if (write(record) == static_cast<int>(record.size())) {
      sent += record;
    }
    socket_->flush();
    largest = std::max(largest, socket_->footprint());
    const ssize_t n = ::recv(peer_, chunk, sizeof chunk, 0);
    if (n > 0) {
      got.append(chunk, static_cast<std::size_t>(n));
    }
  }
  EXPECT_GT(sent.size(), 3 * GatheringSocket::kGatherBytes) << "too few records for the test";
  EXPECT_LE(largest, 2 * (GatheringSocket::kGatherBytes + GatheringSocket::kFullRecord));
  while (socket_->held() > 0) {
    got += drainPeer();
    ASSERT_NE(socket_->flush(), GatheringSocket::Flush::Failed);
  }
  got += drainPeer();
  EXPECT_TRUE(got == sent) << "bytes arrived out of order or altered";
}

TEST_F(GatheringSocketTest, ADeadSocketFailsWithoutRetry) {
  ::close(peer_);
  peer_ = -1;
  ASSERT_EQ(write("record"), 6);
  errno = 0;
  EXPECT_EQ(socket_->flush(), GatheringSocket::Flush::Failed);
  EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET) << errno;
  EXPECT_EQ(socket_->held(), 0U) << "what can never be sent is dropped";
  ASSERT_EQ(write("record"), 6);
  EXPECT_EQ(BIO_flush(bio_), -1);
  EXPECT_FALSE(BIO_should_retry(bio_));
}

TEST_F(GatheringSocketTest, ReadsAreASocketsReads) {
  char into[64];
  EXPECT_EQ(BIO_read(bio_, into, sizeof into), -1);
  EXPECT_TRUE(BIO_should_retry(bio_) && BIO_should_read(bio_)) << "nothing yet: retry";
  ASSERT_EQ(::send(peer_, "hello", 5, 0), 5);
  ASSERT_EQ(BIO_read(bio_, into, sizeof into), 5);
  EXPECT_EQ(std::string(into, 5), "hello");
  EXPECT_EQ(BIO_eof(bio_), 0);
  ::shutdown(peer_, SHUT_WR);
  EXPECT_EQ(BIO_read(bio_, into, sizeof into), 0);
  EXPECT_FALSE(BIO_should_retry(bio_));
  EXPECT_EQ(BIO_eof(bio_), 1) << "a FIN is told apart from a failed read";
}

}  // namespace
}  // namespace mqtls::net::testing

// Loopback TCP for tests that must see what the kernel sent, not only what arrived: whether
// bytes and a FIN left in one segment.
#pragma once

#include <cstdint>
#include <vector>

namespace mqtls::net::testing {

// A descriptor closed when it goes out of scope.
struct OwnedFd {
  int fd = -1;
  OwnedFd() = default;
  explicit OwnedFd(int owned) : fd(owned) {}
  OwnedFd(OwnedFd&& other) noexcept : fd(other.fd) { other.fd = -1; }
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    reset();
    fd = other.fd;
    other.fd = -1;
    return *this;
  }
  ~OwnedFd() { reset(); }
  void reset();
};

// A listening socket on 127.0.0.1 with a kernel-chosen port (-1 on failure).
int listenLoopback(std::uint16_t& port, int backlog = 4);
// A loopback port whose connects hang, like a broker that stopped answering: a listener that
// never accepts, its accept queue filled with parked connections, so the kernel drops further
// SYNs. `held` keeps the listener and the parked sockets open. 0 on a TCP stack that completes
// every connect (the caller skips).
std::uint16_t hangingLoopbackPort(std::vector<OwnedFd>& held);
// A connected pair of non-blocking loopback TCP sockets; both -1 on failure. The caller owns
// both.
struct TcpPair {
  int near = -1;
  int far = -1;
};
TcpPair tcpPair();
// Segments the kernel has received on `fd` (TCP_INFO's segs_in): handshake ones included, so
// tests compare two readings.
std::uint32_t segmentsIn(int fd);

}  // namespace mqtls::net::testing

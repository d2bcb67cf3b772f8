// Loopback TCP for tests that must see what the kernel sent, not only what arrived: whether
// bytes and a FIN left in one segment.
#pragma once

#include <cstdint>

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
int listenLoopback(std::uint16_t& port);
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

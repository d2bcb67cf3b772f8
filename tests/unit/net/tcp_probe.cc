#include "net/tcp_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/tcp.h>  // tcp_info with segs_in; glibc's netinet/tcp.h lacks it
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mqtls::net::testing {
namespace {

void setNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Starts a non-blocking connect to 127.0.0.1:`port`, keeps the socket in `held`, and tells
// whether the connect is still pending after `wait_ms`.
bool connectHangs(std::uint16_t port, int wait_ms, std::vector<OwnedFd>& held) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  held.emplace_back(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    return false;
  }
  pollfd pending{fd, POLLOUT, 0};
  return ::poll(&pending, 1, wait_ms) == 0;
}

}  // namespace

void OwnedFd::reset() {
  if (fd >= 0) {
    ::close(fd);
  }
  fd = -1;
}

int listenLoopback(std::uint16_t& port, int backlog) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) {
      ::close(fd);
    }
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

std::uint16_t hangingLoopbackPort(std::vector<OwnedFd>& held) {
  std::uint16_t port = 0;
  const int listener = listenLoopback(port, 0);
  if (listener < 0) {
    return 0;
  }
  held.emplace_back(listener);
  for (int parked = 0; parked < 256; ++parked) {
    if (connectHangs(port, 300, held)) {
      return port;
    }
  }
  return 0;
}

TcpPair tcpPair() {
  std::uint16_t port = 0;
  const int listener = listenLoopback(port);
  if (listener < 0) {
    return {};
  }
  TcpPair pair;
  pair.near = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (pair.near >= 0 &&
      ::connect(pair.near, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    pair.far = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  }
  ::close(listener);
  if (pair.far < 0) {
    if (pair.near >= 0) {
      ::close(pair.near);
    }
    return {};
  }
  setNonBlocking(pair.near);
  setNonBlocking(pair.far);
  return pair;
}

std::uint32_t segmentsIn(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return 0;
  }
  return info.tcpi_segs_in;
}

}  // namespace mqtls::net::testing

#include "endpoint.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mqtls::bench {
namespace {

constexpr int kProbeTimeoutMs = 1000;

// "" if a TCP connection to `endpoint` is accepted within the probe timeout, else why not.
std::string probe(const Endpoint& endpoint) {
  std::string error;
  int fd = openClientSocket(endpoint, error);
  if (fd < 0) {
    return error;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&endpoint.address), endpoint.length) != 0 &&
      errno != EINPROGRESS) {
    error = std::strerror(errno);
  } else {
    pollfd wait{fd, POLLOUT, 0};
    int status = 0;
    socklen_t length = sizeof status;
    if (poll(&wait, 1, kProbeTimeoutMs) != 1) {
      error = "no answer within a second";
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &status, &length) != 0 || status != 0) {
      error = std::strerror(status != 0 ? status : errno);
    }
  }
  ::close(fd);
  return error;
}

}  // namespace

std::uint16_t Endpoint::port() const {
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
}

void Endpoint::setPort(std::uint16_t port) {
  if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6&>(address).sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in&>(address).sin_port = htons(port);
  }
}

bool Endpoint::isLoopbackV4() const {
  return family() == AF_INET &&
         (ntohl(reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr) >> 24) == 127;
}

std::string Endpoint::text() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, host,
              sizeof host);
    std::string text = "[";
    text.append(host).append("]:").append(std::to_string(port()));
    return text;
  }
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(port());
}

bool resolveHost(const std::string& host, std::vector<Endpoint>& addresses, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int status = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (status != 0) {
    error = "cannot resolve '" + host + "': " + gai_strerror(status);
    return false;
  }
  addresses.clear();
  for (const addrinfo* at = found; at != nullptr; at = at->ai_next) {
    if ((at->ai_family == AF_INET || at->ai_family == AF_INET6) &&
        at->ai_addrlen <= sizeof(sockaddr_storage)) {
      Endpoint endpoint;
      std::memcpy(&endpoint.address, at->ai_addr, at->ai_addrlen);
      endpoint.length = at->ai_addrlen;
      addresses.push_back(endpoint);
    }
  }
  freeaddrinfo(found);
  if (addresses.empty()) {
    error = "cannot resolve '" + host + "': no IPv4 or IPv6 address";
    return false;
  }
  return true;
}

Endpoint pickEndpoint(std::vector<Endpoint> addresses, std::uint16_t port, std::string& note) {
  note.clear();
  for (auto& address : addresses) {
    address.setPort(port);
  }
  if (addresses.size() == 1) {
    return addresses.front();
  }
  for (const auto& address : addresses) {
    const std::string refused = probe(address);
    if (refused.empty()) {
      return address;
    }
    note += (note.empty() ? "passed over " : ", ") + address.text() + " (" + refused + ")";
  }
  note += "; none accepted a connection";
  return addresses.front();
}

bool isIpAddress(const std::string& text) {
  const std::string address = text.substr(0, text.find('%'));  // an IPv6 zone: fe80::1%eth0
  in6_addr scratch{};
  return inet_pton(AF_INET, address.c_str(), &scratch) == 1 ||
         inet_pton(AF_INET6, address.c_str(), &scratch) == 1;
}

int openClientSocket(const Endpoint& endpoint, std::string& error) {
  int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool applyServerName(SSL* ssl, const Endpoint& endpoint) {
  // RFC 6066: SNI carries host names only, never an address.
  return endpoint.server_name.empty() || isIpAddress(endpoint.server_name) ||
         SSL_set_tlsext_host_name(ssl, endpoint.server_name.c_str()) == 1;
}

}  // namespace mqtls::bench

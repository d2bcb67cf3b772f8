#include "net/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace mqtls::net {

std::string formatAddress(const sockaddr* addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr == nullptr) {
    return "?";
  }
  if (addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "unix";
}

}  // namespace mqtls::net

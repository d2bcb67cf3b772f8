// How a peer's address reads in logs and access records.
#pragma once

#include <sys/socket.h>

#include <string>

namespace mqtls::net {

// "ip:port" or "[ip6]:port" for an address, "unix" for a Unix socket, "?" for none.
std::string formatAddress(const sockaddr* addr);

}  // namespace mqtls::net

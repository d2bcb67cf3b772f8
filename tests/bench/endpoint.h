// Where the load generator's connections go: a host resolved once, the address picked per target
// port, and the server name its TLS clients send.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mqtls::bench {

// One address (IPv4 or IPv6) and port, and the server name sent in the ClientHello (SNI;
// empty: none).
struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
  std::string server_name;

  int family() const { return address.ss_family; }
  std::uint16_t port() const;
  void setPort(std::uint16_t port);
  bool isLoopbackV4() const;  // in 127.0.0.0/8
  std::string text() const;   // "127.0.0.1:8883", "[::1]:8883"
};

// Every address getaddrinfo gives `host` (a host name, an IPv4 or an IPv6 address) for a TCP
// client, in its order, port 0. False with `error` set if it resolves to nothing.
bool resolveHost(const std::string& host, std::vector<Endpoint>& addresses, std::string& error);

// The address of `addresses` (non-empty) to use on `port`: the only one, or else the first that
// accepts a TCP connection within a second, as a client falls back from one address to the
// next (a name such as localhost may give ::1 first while the server listens on 127.0.0.1
// only). The probe is a connect and a close, nothing else. `note` says which addresses were
// passed over and why; if none accepts, the first is used and the run reports its error.
Endpoint pickEndpoint(std::vector<Endpoint> addresses, std::uint16_t port, std::string& note);

// True if `text` is an IPv4 or IPv6 address (an IPv6 zone such as %eth0 allowed) rather than a
// host name.
bool isIpAddress(const std::string& text);

// A non-blocking TCP socket of `endpoint`'s family with TCP_NODELAY, or -1 with `error` set.
int openClientSocket(const Endpoint& endpoint, std::string& error);

// Names the server for SNI on `ssl` if `endpoint` has a server name; false if OpenSSL refuses it.
bool applyServerName(SSL* ssl, const Endpoint& endpoint);

}  // namespace mqtls::bench

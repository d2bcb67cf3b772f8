// The load generator's address choice, on real sockets: a name with several addresses falls
// back to the one that accepts.
#include "endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace mqtls::bench {
namespace {

Endpoint literal(const std::string& host) {
  std::vector<Endpoint> found;
  std::string error;
  EXPECT_TRUE(resolveHost(host, found, error)) << error;
  EXPECT_EQ(found.size(), 1u);
  return found.empty() ? Endpoint{} : found.front();
}

// A listening socket on 127.0.0.1 and a free port; its port, or 0.
int listenLoopback(int& fd) {
  fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(fd, 4) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return 0;
  }
  return ntohs(address.sin_port);
}

TEST(EndpointTest, AnAddressThatRefusesIsPassedOverForOneThatAccepts) {
  int listener = -1;
  const int port = listenLoopback(listener);
  ASSERT_GT(port, 0);
  // As glibc orders localhost on most machines: ::1 first, where nothing listens.
  std::vector<Endpoint> addresses{literal("::1"), literal("127.0.0.1")};
  std::string note;
  Endpoint picked = pickEndpoint(addresses, static_cast<std::uint16_t>(port), note);
  EXPECT_EQ(picked.text(), "127.0.0.1:" + std::to_string(port));
  EXPECT_NE(note.find("passed over [::1]:" + std::to_string(port)), std::string::npos) << note;
  ::close(listener);
}

TEST(EndpointTest, TheOnlyAddressIsTakenWithoutAProbe) {
  std::string note;
  Endpoint picked = pickEndpoint({literal("127.0.0.1")}, 1, note);  // nothing listens on 1
  EXPECT_EQ(picked.text(), "127.0.0.1:1");
  EXPECT_TRUE(note.empty()) << note;
}

TEST(EndpointTest, WhenNoneAcceptsTheFirstIsUsedAndTheNoteSaysSo) {
  std::string note;
  Endpoint picked = pickEndpoint({literal("127.0.0.2"), literal("127.0.0.1")}, 1, note);
  EXPECT_EQ(picked.text(), "127.0.0.2:1");
  EXPECT_NE(note.find("none accepted"), std::string::npos) << note;
}

TEST(EndpointTest, AddressesAndNames) {
  EXPECT_TRUE(isIpAddress("10.0.0.1"));
  EXPECT_TRUE(isIpAddress("::1"));
  EXPECT_TRUE(isIpAddress("fe80::1%eth0"));
  EXPECT_FALSE(isIpAddress("localhost"));
  EXPECT_FALSE(isIpAddress("mqtls.example.net"));
  std::vector<Endpoint> found;
  std::string error;
  EXPECT_FALSE(resolveHost("no-such-host.invalid", found, error));
  EXPECT_NE(error.find("cannot resolve 'no-such-host.invalid'"), std::string::npos) << error;
}

TEST(EndpointTest, AnAddressIsNeverSentAsServerName) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  for (const char* name : {"10.0.0.1", "::1", "mqtls.example.net"}) {
    SSL* ssl = SSL_new(ctx);
    Endpoint endpoint = literal("127.0.0.1");
    endpoint.server_name = name;
    EXPECT_TRUE(applyServerName(ssl, endpoint));
    const char* sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (isIpAddress(name)) {
      EXPECT_EQ(sent, nullptr) << name;
    } else {
      EXPECT_STREQ(sent, name);
    }
    SSL_free(ssl);
  }
  SSL_CTX_free(ctx);
}

}  // namespace
}  // namespace mqtls::bench

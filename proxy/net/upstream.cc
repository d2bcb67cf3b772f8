#include "net/upstream.h"

#include <event2/dns.h>
#include <event2/util.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace mqtls::net {

BufferEventPtr dialUpstream(event_base* base, evdns_base* dns, const config::Upstream& upstream,
                            std::string& error) {
  BufferEventPtr bev(
      bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  if (!bev) {
    error = "cannot allocate upstream connection";
    return nullptr;
  }
  int rc = 0;
  if (!upstream.unix_socket.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, upstream.unix_socket.c_str(), sizeof addr.sun_path - 1);
    rc = bufferevent_socket_connect(bev.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    rc = bufferevent_socket_connect_hostname(bev.get(), dns, AF_UNSPEC, upstream.host.c_str(),
                                             upstream.port);
  }
  if (rc != 0) {
    error = std::strerror(errno);
    return nullptr;
  }
  return bev;
}

std::string dialErrorText(bufferevent* bev) {
  int dns_error = bufferevent_socket_get_dns_error(bev);
  if (dns_error != 0) {
    return std::string("name resolution failed: ") + evutil_gai_strerror(dns_error);
  }
  int err = EVUTIL_SOCKET_ERROR();
  return err != 0 ? evutil_socket_error_to_string(err) : "connection failed";
}

std::string describeUpstream(const config::Upstream& upstream) {
  if (!upstream.unix_socket.empty()) {
    return "unix:" + upstream.unix_socket;
  }
  return upstream.host + ":" + std::to_string(upstream.port);
}

}  // namespace mqtls::net

#include "ops/admin_probe.h"

#include <event2/dns.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

namespace mqtls::ops {

UpstreamProbe::UpstreamProbe(event_base* base, const config::Upstream& upstream,
                             std::chrono::milliseconds timeout, Done done)
    : base_(base), upstream_(upstream), timeout_(timeout), done_(std::move(done)) {
  target_ = upstream_.unix_socket.empty() ? upstream_.host + ":" + std::to_string(upstream_.port)
                                          : upstream_.unix_socket;
  report_.reset(event_new(
      base_, -1, 0,
      [](evutil_socket_t, short, void* self) {
        auto* probe = static_cast<UpstreamProbe*>(self);
        probe->finish(false, probe->pending_detail_);
      },
      this));
}

UpstreamProbe::~UpstreamProbe() {
  attempt_.reset();  // cancels a name lookup in progress before the DNS base goes
  dns_.reset();
}

void UpstreamProbe::start() {
  if (attempt_) {
    return;
  }
  attempt_.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  if (!attempt_) {
    pending_detail_ = "cannot allocate a socket buffer";
    event_active(report_.get(), 0, 0);
    return;
  }
  const timeval tv{static_cast<time_t>(timeout_.count() / 1000),
                   static_cast<suseconds_t>((timeout_.count() % 1000) * 1000)};
  bufferevent_set_timeouts(attempt_.get(), nullptr, &tv);  // the write timeout bounds connect
  bufferevent_setcb(attempt_.get(), nullptr, nullptr, &UpstreamProbe::onEvent, this);
  int rc = 0;
  if (!upstream_.unix_socket.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, upstream_.unix_socket.c_str(), sizeof addr.sun_path - 1);
    rc =
        bufferevent_socket_connect(attempt_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    if (!dns_) {
      dns_.reset(evdns_base_new(base_, EVDNS_BASE_INITIALIZE_NAMESERVERS));
      if (!dns_) {
        dns_.reset(evdns_base_new(base_, 0));  // numeric hosts and /etc/hosts still resolve
      }
    }
    rc = bufferevent_socket_connect_hostname(attempt_.get(), dns_.get(), AF_UNSPEC,
                                             upstream_.host.c_str(), upstream_.port);
  }
  if (rc != 0 && attempt_) {
    // An immediate failure may already have been reported through onEvent.
    pending_detail_ = std::strerror(errno);
    attempt_.reset();
    event_active(report_.get(), 0, 0);
  }
}

void UpstreamProbe::onEvent(bufferevent* bev, short what, void* arg) {
  auto* self = static_cast<UpstreamProbe*>(arg);
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    self->finish(true, "");
    return;
  }
  std::string detail;
  if ((what & BEV_EVENT_TIMEOUT) != 0) {
    detail = "no answer within " + std::to_string(self->timeout_.count()) + " ms";
  } else if (int dns_error = bufferevent_socket_get_dns_error(bev); dns_error != 0) {
    detail = std::string("cannot resolve: ") + evutil_gai_strerror(dns_error);
  } else {
    detail = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
  }
  self->finish(false, detail);
}

void UpstreamProbe::finish(bool ok, const std::string& detail) {
  const std::string copy = detail;  // may point into members reset below
  attempt_.reset();
  done_(ok, copy);
}

}  // namespace mqtls::ops

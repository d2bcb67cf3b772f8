#include "net/upstream_stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace mqtls::net {
namespace {

// No attempt gets less than this, however many addresses remain.
constexpr std::chrono::milliseconds kMinAttempt{250};

std::string socketErrorText(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
    return std::strerror(err);
  }
  err = EVUTIL_SOCKET_ERROR();
  return err != 0 ? evutil_socket_error_to_string(err) : "connection failed";
}

}  // namespace

std::string describeUpstream(const config::Upstream& upstream) {
  if (!upstream.unix_socket.empty()) {
    return "unix:" + upstream.unix_socket;
  }
  return upstream.host + ":" + std::to_string(upstream.port);
}

UpstreamStream::UpstreamStream(StreamObserver& observer, event_base* base, evdns_base* dns)
    : Stream(observer), base_(base), dns_(dns) {
  attempt_timer_.reset(evtimer_new(base_, &UpstreamStream::attemptTimeoutCallback, this));
  fail_later_.reset(event_new(base_, -1, 0, &UpstreamStream::failLaterCallback, this));
}

UpstreamStream::~UpstreamStream() {
  if (resolving_ != nullptr) {
    evdns_getaddrinfo_request* request = resolving_;
    resolving_ = nullptr;
    evdns_getaddrinfo_cancel(request);  // calls back with EVUTIL_EAI_CANCEL, ignored below
  }
}

void UpstreamStream::dial(const config::Upstream& upstream) {
  deadline_ = std::chrono::steady_clock::now() + upstream.connect_timeout;
  if (!upstream.unix_socket.empty()) {
    sockaddr_storage storage{};
    auto* addr = reinterpret_cast<sockaddr_un*>(&storage);
    addr->sun_family = AF_UNIX;
    std::strncpy(addr->sun_path, upstream.unix_socket.c_str(), sizeof addr->sun_path - 1);
    addresses_.push_back(storage);
    address_lengths_.push_back(sizeof(sockaddr_un));
    setPeerAddress("unix:" + upstream.unix_socket);
    tryNextAddress();
    return;
  }
  evutil_addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
  std::string port = std::to_string(upstream.port);
  if (dns_ == nullptr) {
    failLater("name resolution unavailable");
    return;
  }
  // May call back before returning (numeric hosts, /etc/hosts); then it returns null.
  evdns_getaddrinfo_request* request = evdns_getaddrinfo(
      dns_, upstream.host.c_str(), port.c_str(), &hints, &UpstreamStream::resolvedCallback, this);
  resolving_ = request;
}

void UpstreamStream::resolvedCallback(int result, evutil_addrinfo* addresses, void* self) {
  if (result == EVUTIL_EAI_CANCEL) {
    if (addresses != nullptr) {
      evutil_freeaddrinfo(addresses);
    }
    return;  // the stream is being destroyed
  }
  static_cast<UpstreamStream*>(self)->onResolved(result, addresses);
}

void UpstreamStream::onResolved(int result, evutil_addrinfo* addresses) {
  resolving_ = nullptr;
  if (result != 0) {
    failLater(std::string("name resolution failed: ") + evutil_gai_strerror(result));
    return;
  }
  for (evutil_addrinfo* ai = addresses; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    sockaddr_storage storage{};
    std::memcpy(&storage, ai->ai_addr, ai->ai_addrlen);
    addresses_.push_back(storage);
    address_lengths_.push_back(static_cast<socklen_t>(ai->ai_addrlen));
  }
  if (addresses != nullptr) {
    evutil_freeaddrinfo(addresses);
  }
  if (addresses_.empty()) {
    failLater("name resolution returned no address");
    return;
  }
  tryNextAddress();
}

// Starts the next attempt, bounded by an equal share of the time left; reports Closed when no
// address is left.
void UpstreamStream::tryNextAddress() {
  while (next_address_ < addresses_.size()) {
    const auto* addr = reinterpret_cast<const sockaddr*>(&addresses_[next_address_]);
    const socklen_t len = address_lengths_[next_address_];
    const std::size_t left = addresses_.size() - next_address_;
    ++next_address_;
    if (addr->sa_family != AF_UNIX) {
      setPeerAddress(formatAddress(addr));
    }
    adopt(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
    if (bev() == nullptr) {
      failLater("cannot allocate upstream connection");
      return;
    }
    if (bufferevent_socket_connect(bev(), const_cast<sockaddr*>(addr), static_cast<int>(len)) !=
        0) {
      attempt_errors_ +=
          (attempt_errors_.empty() ? "" : "; ") + peerAddress() + ": " + std::strerror(errno);
      releaseBufferEvent();
      continue;
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    auto share = std::max(remaining / static_cast<long>(left), kMinAttempt);
    timeval tv{static_cast<time_t>(share.count() / 1000),
               static_cast<suseconds_t>((share.count() % 1000) * 1000)};
    evtimer_add(attempt_timer_.get(), &tv);
    bufferevent_enable(bev(), EV_READ | EV_WRITE);
    return;
  }
  failLater(attempt_errors_.empty() ? "no address to connect to" : attempt_errors_);
}

void UpstreamStream::attemptFailed(const std::string& why) {
  event_del(attempt_timer_.get());
  attempt_errors_ += (attempt_errors_.empty() ? "" : "; ") + peerAddress() + ": " + why;
  releaseBufferEvent();
  tryNextAddress();
}

void UpstreamStream::attemptTimeoutCallback(evutil_socket_t, short, void* self) {
  static_cast<UpstreamStream*>(self)->attemptFailed("connect timed out");
}

// Reports Closed(Error) on the next loop turn, never from inside the caller.
void UpstreamStream::failLater(std::string why) {
  markClosed(CloseKind::Error, std::move(why));
  event_active(fail_later_.get(), 0, 0);
}

void UpstreamStream::failLaterCallback(evutil_socket_t, short, void* self) {
  static_cast<UpstreamStream*>(self)->notify(StreamEvent::Closed);
}

void UpstreamStream::onConnected() {
  event_del(attempt_timer_.get());
  connected_ = true;
  int one = 1;
  setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  notify(StreamEvent::Connected);
}

void UpstreamStream::onError(short what) {
  if (!connected_) {
    attemptFailed(socketErrorText(fd()));
    return;
  }
  Stream::onError(what);
}

// libevent reads at most 4 KiB from a socket per readiness event. Reads what else the broker has
// already sent (up to `bytes` buffered) so it is forwarded in one piece. Stops at EAGAIN, EOF or
// an error; the bufferevent sees EOF and errors itself on its next read.
void UpstreamStream::readAhead(std::size_t bytes) {
  evbuffer* in = input();
  if (in == nullptr || !connected_) {
    return;
  }
  std::size_t buffered = evbuffer_get_length(in);
  while (buffered < bytes) {
    int n = evbuffer_read(in, fd(), static_cast<int>(bytes - buffered));
    if (n <= 0) {
      break;
    }
    buffered += static_cast<std::size_t>(n);
  }
}

}  // namespace mqtls::net

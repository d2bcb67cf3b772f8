#include "net/upstream_stream.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>

namespace mqtls::net {
namespace {

// No attempt gets less than this, however many addresses remain.
constexpr std::chrono::milliseconds kMinAttempt{250};
// Pauses before connecting again to a Unix socket whose backlog was full: doubling from the
// first to the last.
constexpr std::chrono::milliseconds kFirstBacklogPause{1};
constexpr std::chrono::milliseconds kLastBacklogPause{50};

}  // namespace

std::string describeUpstream(const config::Upstream& upstream) {
  if (!upstream.unix_socket.empty()) {
    return "unix:" + upstream.unix_socket;
  }
  return upstream.host + ":" + std::to_string(upstream.port);
}

UpstreamStream::UpstreamStream(StreamObserver& observer, event_base* base, evdns_base* dns)
    : Stream(observer, base), dns_(dns) {
  attempt_timer_.reset(evtimer_new(base, &UpstreamStream::attemptTimeoutCallback, this));
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

// Starts the next attempt (a non-blocking connect whose result arrives as writability, even when
// it completes at once), bounded by an equal share of the time left; reports Closed when no
// address is left.
void UpstreamStream::tryNextAddress() {
  while (next_address_ < addresses_.size()) {
    const auto* addr = reinterpret_cast<const sockaddr*>(&addresses_[next_address_]);
    const socklen_t len = address_lengths_[next_address_];
    const std::size_t left = addresses_.size() - next_address_;
    ++next_address_;
    timed_out_ = false;  // this attempt's own outcome decides
    if (addr->sa_family != AF_UNIX) {
      setPeerAddress(formatAddress(addr));
    }
    const int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      attempt_errors_ +=
          (attempt_errors_.empty() ? "" : "; ") + peerAddress() + ": " + std::strerror(errno);
      continue;
    }
    if (::connect(fd, addr, len) != 0 && errno != EINPROGRESS && errno != EINTR) {
      const int error = errno;
      ::close(fd);
      // EAGAIN (a Unix socket's full backlog) started nothing; the same socket is tried again.
      if (error == EAGAIN && addr->sa_family == AF_UNIX && pauseForFullBacklog()) {
        --next_address_;
        return;
      }
      attempt_errors_ +=
          (attempt_errors_.empty() ? "" : "; ") + peerAddress() + ": " + std::strerror(error) +
          (backlog_tries_ > 0
               ? " (backlog full; tried " + std::to_string(backlog_tries_ + 1) + " times)"
               : "");
      continue;
    }
    if (!attempt_timer_ || !attach(fd, Phase::Connecting)) {
      if (!attempt_timer_) {
        ::close(fd);
        failLater("cannot allocate connection state");
      }
      return;  // reports Closed
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    auto share = std::max(remaining / static_cast<long>(left), kMinAttempt);
    timeval tv{static_cast<time_t>(share.count() / 1000),
               static_cast<suseconds_t>((share.count() % 1000) * 1000)};
    evtimer_add(attempt_timer_.get(), &tv);
    return;
  }
  failLater(attempt_errors_.empty() ? "no address to connect to" : attempt_errors_);
}

void UpstreamStream::attemptFailed(const std::string& why, bool timed_out) {
  event_del(attempt_timer_.get());
  timed_out_ = timed_out;
  attempt_errors_ += (attempt_errors_.empty() ? "" : "; ") + peerAddress() + ": " + why;
  detach();
  tryNextAddress();
}

bool UpstreamStream::pauseForFullBacklog() {
  backlog_pause_ = backlog_pause_ < kFirstBacklogPause
                       ? kFirstBacklogPause
                       : std::min(backlog_pause_ * 2, kLastBacklogPause);
  // Jittered by +-50%, so that a burst of devices does not knock in step.
  thread_local std::minstd_rand jitter(static_cast<unsigned>(::getpid()));
  const auto pause = std::chrono::microseconds(
      backlog_pause_.count() * 500 + static_cast<long>(jitter() % 1000) * backlog_pause_.count());
  if (!attempt_timer_) {
    return false;
  }
  if (std::chrono::steady_clock::now() + pause >= deadline_) {
    timed_out_ = true;  // no time left for another try: the connect timeout ran out
    return false;
  }
  timeval tv{static_cast<time_t>(pause.count() / 1000000),
             static_cast<suseconds_t>(pause.count() % 1000000)};
  ++backlog_tries_;
  backlog_waiting_ = true;
  evtimer_add(attempt_timer_.get(), &tv);
  return true;
}

void UpstreamStream::attemptTimeoutCallback(evutil_socket_t, short, void* self) {
  auto* stream = static_cast<UpstreamStream*>(self);
  if (stream->backlog_waiting_) {
    stream->backlog_waiting_ = false;
    stream->tryNextAddress();  // the socket whose backlog was full, again
    return;
  }
  stream->attemptFailed("connect timed out", true);
}

bool UpstreamStream::onConnectResult(int error) {
  if (error != 0) {
    attemptFailed(std::strerror(error), false);
    return true;
  }
  // Connected: what only the attempts needed is freed (idle connections hold thousands of these).
  attempt_timer_.reset();
  std::vector<sockaddr_storage>().swap(addresses_);
  std::vector<socklen_t>().swap(address_lengths_);
  std::string().swap(attempt_errors_);
  next_address_ = 0;
  int one = 1;
  setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return becomeOpen();
}

}  // namespace mqtls::net

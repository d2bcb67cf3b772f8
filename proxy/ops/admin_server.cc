// AdminServer, lifecycle: binding, the two threads, answers deferred to the helper thread, and
// the broker check behind /readyz. The endpoints themselves are in admin_routes.cc.
#include "ops/admin_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <exception>

#include "ops/admin_server_impl.h"

namespace mqtls::ops {
namespace {

// More deferred requests than this waiting for the helper thread are answered 503 at once.
constexpr std::size_t kMaxQueuedJobs = 16;

timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

const char* reasonPhrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "";
  }
}

}  // namespace

Result<std::pair<std::string, std::uint16_t>> splitListenAddress(const std::string& listen) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Error{"'" + listen + "' is not 'host:port'"};
  }
  std::string host = listen.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = -1;
  const char* first = listen.data() + colon + 1;
  const char* last = listen.data() + listen.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port < 0 || port > 65535 || host.empty()) {
    return Error{"'" + listen + "' is not 'host:port'"};
  }
  return std::pair{host, static_cast<std::uint16_t>(port)};
}

bool isLoopbackHost(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) != 0;
  }
  return host == "localhost";
}

AdminServer::Impl::Impl(Settings settings, Metrics& metrics, AdminActions& actions)
    : settings_(std::move(settings)), metrics_(metrics), actions_(actions) {}

AdminServer::Impl::~Impl() {
  stop();
  // The HTTP connections and the probe use the loop: they go before it.
  probe_tick_.reset();
  results_ready_.reset();
  probe_.reset();
  http_.reset();
  base_.reset();
}

Status AdminServer::Impl::bind() {
  auto address = splitListenAddress(settings_.listen);
  if (!address) {
    return Status::failure("admin.listen: " + address.error().message);
  }
  base_.reset(event_base_new());
  http_.reset(base_ ? evhttp_new(base_.get()) : nullptr);
  if (!http_) {
    return Status::failure("admin.listen: cannot create the HTTP server");
  }
  evhttp_set_gencb(http_.get(), &Impl::onRequest, this);
  if (settings_.tls_context) {
    evhttp_set_bevcb(http_.get(), &Impl::newTlsBufferevent, this);
  }
  evhttp_set_timeout(http_.get(), 30);
  evhttp_set_max_headers_size(http_.get(), 16 * 1024);
  evhttp_set_max_body_size(http_.get(), 4 * 1024);
  evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
  const auto& [host, port] = *address;
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_.get(), host.c_str(), port);
  if (bound == nullptr) {
    const int err = errno;
    return Status::failure("admin.listen '" + settings_.listen +
                           "': cannot listen: " + std::strerror(err) +
                           (err == EADDRINUSE ? " (another process listens on this port)" : ""));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&addr), &len) ==
      0) {
    port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  const auto probe_timeout = std::min(settings_.probe_interval, settings_.upstream.connect_timeout);
  probe_ = std::make_unique<UpstreamProbe>(
      base_.get(), settings_.upstream, probe_timeout,
      [this](bool ok, const std::string& detail) { onProbeDone(ok, detail); });
  probe_tick_.reset(event_new(
      base_.get(), -1, EV_PERSIST,
      [](evutil_socket_t, short, void* self) { static_cast<Impl*>(self)->onProbeTick(); }, this));
  results_ready_.reset(event_new(
      base_.get(), -1, 0,
      [](evutil_socket_t, short, void* self) { static_cast<Impl*>(self)->deliverResults(); },
      this));
  const timeval tick = toTimeval(settings_.probe_interval);
  evtimer_add(probe_tick_.get(), &tick);
  if (settings_.probe_always) {
    probe_->start();  // the readiness gauge is right from the start
  }
  return Status::success();
}

// The ex_data slot where each admin SSL keeps the context it was made from (a heap shared_ptr,
// freed with the SSL): a reload replacing the context cannot destroy what a connection uses.
static int pinnedContextSlot() {
  static const int slot = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* pinned, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::shared_ptr<SSL_CTX>*>(pinned);
      });
  return slot;
}

bufferevent* AdminServer::Impl::newTlsBufferevent(event_base* base, void* self) {
  auto* impl = static_cast<Impl*>(self);
  std::shared_ptr<SSL_CTX> context = impl->settings_.tls_context();
  SSL* ssl = context ? SSL_new(context.get()) : nullptr;
  if (ssl != nullptr) {
    auto* pinned = new std::shared_ptr<SSL_CTX>(std::move(context));
    if (SSL_set_ex_data(ssl, pinnedContextSlot(), pinned) != 1) {
      delete pinned;
      SSL_free(ssl);
      ssl = nullptr;
    }
  }
  if (ssl == nullptr) {
    // evhttp then makes a plain bufferevent; route() refuses every request on it.
    spdlog::error("admin: cannot start TLS for a new connection (no context or out of memory)");
    return nullptr;
  }
  bufferevent* bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    // libevent 2.1 frees the SSL itself when it fails after taking it: freeing it here could free
    // it twice, so on this allocation failure path it may leak instead.
    return nullptr;
  }
  // HTTP says where a body ends; a client that closes without close_notify loses nothing.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

void AdminServer::Impl::startThreads() {
  jobs_thread_ = std::thread([this] { jobsLoop(); });
  loop_thread_ = std::thread([this] { event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY); });
}

void AdminServer::Impl::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  if (loop_thread_.joinable()) {
    event_base_loopexit(base_.get(), nullptr);
    loop_thread_.join();
  }
  {
    std::lock_guard lock(jobs_mutex_);
    jobs_stopping_ = true;
  }
  jobs_cv_.notify_all();
  if (jobs_thread_.joinable()) {
    jobs_thread_.join();
  }
  // Both threads are gone: every request still waiting is answered (and so freed) here.
  const HttpReply stopping{503, "stopping\n"};
  while (!parked_.empty()) {
    answerParked(parked_.begin()->first, stopping);
  }
}

void AdminServer::Impl::reply(evhttp_request* req, const HttpReply& answer) {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", answer.content_type.c_str());
  evhttp_add_header(headers, "Cache-Control", "no-store");
  std::unique_ptr<evbuffer, void (*)(evbuffer*)> body(evbuffer_new(), &evbuffer_free);
  if (body) {
    evbuffer_add(body.get(), answer.body.data(), answer.body.size());
  }
  evhttp_send_reply(req, answer.code, reasonPhrase(answer.code), body.get());
}

std::uint64_t AdminServer::Impl::park(evhttp_request* req) {
  const std::uint64_t ticket = ++next_ticket_;
  parked_.emplace(ticket, req);
  return ticket;
}

void AdminServer::Impl::answerParked(std::uint64_t ticket, const HttpReply& answer) {
  auto it = parked_.find(ticket);
  if (it == parked_.end()) {
    return;
  }
  evhttp_request* req = it->second;
  parked_.erase(it);
  reply(req, answer);  // a request whose client left is freed by the reply without sending
}

void AdminServer::Impl::defer(evhttp_request* req, std::function<HttpReply()> work) {
  {
    std::lock_guard lock(jobs_mutex_);
    if (jobs_.size() < kMaxQueuedJobs) {
      jobs_.push_back(Job{park(req), std::move(work)});
      jobs_cv_.notify_one();
      return;
    }
  }
  reply(req, HttpReply{503, "busy: too many admin requests in progress; retry later\n"});
}

void AdminServer::Impl::jobsLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(jobs_mutex_);
      jobs_cv_.wait(lock, [this] { return jobs_stopping_ || !jobs_.empty(); });
      if (jobs_stopping_) {
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    HttpReply answer;
    try {
      answer = job.work();
    } catch (const std::exception& e) {
      answer = HttpReply{500, std::string("internal error: ") + e.what() + "\n"};
    }
    {
      std::lock_guard lock(jobs_mutex_);
      results_.emplace_back(job.ticket, std::move(answer));
    }
    event_active(results_ready_.get(), 0, 0);
  }
}

void AdminServer::Impl::deliverResults() {
  std::vector<std::pair<std::uint64_t, HttpReply>> ready;
  {
    std::lock_guard lock(jobs_mutex_);
    ready.swap(results_);
  }
  for (const auto& [ticket, answer] : ready) {
    answerParked(ticket, answer);
  }
}

bool AdminServer::Impl::upstreamFresh(Clock::time_point now) const {
  return checked_at_ && now - *checked_at_ <= 2 * settings_.probe_interval;
}

HttpReply AdminServer::Impl::readinessNow() const {
  if (std::string reason = actions_.notReadyReason(); !reason.empty()) {
    return HttpReply{503, reason + "\n"};
  }
  if (!upstream_ok_) {
    return HttpReply{503,
                     "broker " + probe_->target() + " does not answer: " + upstream_detail_ + "\n"};
  }
  return HttpReply{200, "ready\n"};
}

void AdminServer::Impl::onProbeTick() {
  if (settings_.probe_always || Clock::now() < watched_until_) {
    probe_->start();
  }
}

void AdminServer::Impl::onProbeDone(bool ok, const std::string& detail) {
  if (ok != upstream_ok_ || !checked_at_) {
    if (ok) {
      spdlog::info("admin: broker {} answers", probe_->target());
    } else {
      spdlog::warn("admin: broker {} does not answer: {}; /readyz answers 503", probe_->target(),
                   detail);
    }
  }
  upstream_ok_ = ok;
  upstream_detail_ = ok ? "" : detail;
  checked_at_ = Clock::now();
  metrics_.upstreamReady(ok);
  std::vector<std::uint64_t> waiters;
  waiters.swap(readiness_waiters_);
  for (std::uint64_t ticket : waiters) {
    answerParked(ticket, readinessNow());
  }
}

Result<std::unique_ptr<AdminServer>> AdminServer::start(Settings settings, Metrics& metrics,
                                                        AdminActions& actions) {
  auto impl = std::make_unique<Impl>(std::move(settings), metrics, actions);
  if (auto bound = impl->bind(); !bound) {
    return bound.error();
  }
  impl->startThreads();
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() = default;

void AdminServer::stop() {
  impl_->stop();
}

std::uint16_t AdminServer::port() const {
  return impl_->port();
}

}  // namespace mqtls::ops

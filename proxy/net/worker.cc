#include "net/worker.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mqtls::net {
namespace {

// Gives the calling worker thread the configured scheduling policy, then names it "mqtls-wN"
// (top -H, /proc/PID/task/TID/comm): once named, it runs under its policy. `normal` leaves the
// policy the process was started with. A policy the kernel refuses (a seccomp filter that denies
// sched_setscheduler) is logged once per process; the workers run on with their own.
void prepareWorkerThread(int index, config::WorkerScheduling scheduling) {
  if (scheduling == config::WorkerScheduling::Batch) {
    const sched_param param{};  // priority 0, as SCHED_BATCH requires
    const int error = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    static std::atomic_flag warned = ATOMIC_FLAG_INIT;
    if (error != 0 && !warned.test_and_set()) {
      spdlog::warn(
          "cannot set the batch scheduling policy (SCHED_BATCH) on the workers ({}); they keep "
          "the process's policy. A seccomp filter that denies sched_setscheduler (systemd "
          "SystemCallFilter=~@resources, a container profile) does this: allow that call, or "
          "set worker_scheduling: normal",
          std::strerror(error));
    }
  }
  char name[16];  // the kernel keeps 15 characters and the NUL
  std::snprintf(name, sizeof name, "mqtls-w%d", index);
  pthread_setname_np(pthread_self(), name);
}

constexpr int kBacklog = 1024;
// After EMFILE/ENFILE the listener pauses this long instead of spinning on accept.
constexpr timeval kAcceptPause{1, 0};

timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// The address a listener binds, or a message saying why it is not one.
Result<std::pair<sockaddr_storage, socklen_t>> listenAddress(const config::Listener& listener) {
  sockaddr_storage storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, listener.bind_address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(listener.port);
    return std::pair{storage, socklen_t{sizeof *v4}};
  }
  if (inet_pton(AF_INET6, listener.bind_address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(listener.port);
    return std::pair{storage, socklen_t{sizeof *v6}};
  }
  return Error{"listener '" + listener.name + "': bad bind address '" + listener.bind_address +
               "'"};
}

std::string cannotListen(const config::Listener& listener, int err) {
  return "listener '" + listener.name + "': cannot listen on " + listener.bind_address + " port " +
         std::to_string(listener.port) + ": " + std::strerror(err) +
         (err == EADDRINUSE ? " (address in use: another process listens on this port)" : "");
}

// A bound, listening, non-blocking socket with SO_REUSEPORT, or a message saying why not.
// SO_REUSEPORT lets the workers of this process share the port; it would also let a second
// process join silently and take a share of the clients. So the first worker first binds the
// address once without SO_REUSEPORT: that fails with EADDRINUSE whenever anything listens there.
Result<evutil_socket_t> bindSocket(const config::Listener& listener, bool probe_exclusive) {
  auto address = listenAddress(listener);
  if (!address) {
    return address.error();
  }
  auto* addr = reinterpret_cast<sockaddr*>(&address->first);
  const int one = 1;
  if (probe_exclusive) {
    evutil_socket_t probe = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
      setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      const int rc = bind(probe, addr, address->second);
      const int err = errno;
      ::close(probe);
      if (rc != 0) {
        return Error{cannotListen(listener, err)};
      }
    }
  }
  evutil_socket_t fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Error{"listener '" + listener.name + "': socket: " + std::strerror(errno)};
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // Accepted sockets inherit it (Linux clones them from the listener): no system call per client.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(fd, addr, address->second) != 0 || listen(fd, kBacklog) != 0) {
    const int err = errno;
    ::close(fd);
    return Error{cannotListen(listener, err)};
  }
  return fd;
}

}  // namespace

Worker::Worker(int index, const config::Config& config, ops::Metrics& metrics, ConnectionGate& gate,
               std::atomic<std::uint64_t>& ids, tls::OcspCache& ocsp_cache)
    : index_(index),
      config_(config),
      metrics_(metrics),
      gate_(gate),
      ids_(ids),
      policy_(config.identity),
      decider_(*this, policy_, ocsp_cache) {}

Result<std::unique_ptr<Worker>> Worker::create(int index, const config::Config& config,
                                               const std::vector<ListenerRuntime>& listeners,
                                               ops::Metrics& metrics, ConnectionGate& gate,
                                               std::atomic<std::uint64_t>& ids,
                                               tls::OcspCache& ocsp_cache) {
  std::unique_ptr<Worker> worker(new Worker(index, config, metrics, gate, ids, ocsp_cache));
  // The changelist folds the add/delete of a write event within one loop pass into one
  // epoll_ctl (or none), which matters when every forwarded packet toggles write interest.
  std::unique_ptr<event_config, void (*)(event_config*)> event_cfg(event_config_new(),
                                                                   &event_config_free);
  event_config_set_flag(event_cfg.get(), EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  worker->base_.reset(event_base_new_with_config(event_cfg.get()));
  if (!worker->base_) {
    return Error{"cannot create event loop"};
  }
  event_base* base = worker->base_.get();
  Worker* self = worker.get();
  worker->drain_request_.reset(event_new(
      base, -1, 0, [](evutil_socket_t, short, void* w) { static_cast<Worker*>(w)->beginDrain(); },
      self));
  worker->stop_request_.reset(event_new(
      base, -1, 0, [](evutil_socket_t, short, void* w) { static_cast<Worker*>(w)->closeAll(); },
      self));
  worker->drain_deadline_.reset(evtimer_new(
      base, [](evutil_socket_t, short, void* w) { static_cast<Worker*>(w)->closeAll(); }, self));
  worker->accept_resume_.reset(evtimer_new(
      base,
      [](evutil_socket_t, short, void* w) {
        for (auto& bound : static_cast<Worker*>(w)->bound_) {
          evconnlistener_enable(bound->listener.get());
        }
      },
      self));
  worker->heartbeat_.reset(event_new(
      base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* w) { static_cast<Worker*>(w)->beat(); }, self));
  worker->tasks_ready_.reset(event_new(
      base, -1, 0, [](evutil_socket_t, short, void* w) { static_cast<Worker*>(w)->runTasks(); },
      self));
  for (const auto& listener : listeners) {
    if (auto bound = worker->bindListener(listener); !bound) {
      return bound.error();
    }
  }
  return worker;
}

Worker::~Worker() {
  connections_.clear();
  bound_.clear();
  dns_.reset();
}

Status Worker::bindListener(const ListenerRuntime& listener) {
  auto fd = bindSocket(*listener.settings, index_ == 0);
  if (!fd) {
    return fd.error();
  }
  auto bound = std::make_unique<Bound>(Bound{listener, nullptr, this});
  bound->listener.reset(evconnlistener_new(base_.get(), &Worker::acceptCallback, bound.get(),
                                           LEV_OPT_CLOSE_ON_FREE, -1, *fd));
  if (!bound->listener) {
    ::close(*fd);
    return Status::failure("listener '" + listener.settings->name + "': cannot watch socket");
  }
  evconnlistener_set_error_cb(bound->listener.get(), &Worker::acceptErrorCallback);
  bound_.push_back(std::move(bound));
  return Status::success();
}

evdns_base* Worker::dns() {
  if (!dns_) {
    // Reads /etc/resolv.conf and /etc/hosts; numeric hosts never touch the network.
    dns_.reset(evdns_base_new(base_.get(), EVDNS_BASE_INITIALIZE_NAMESERVERS));
    if (!dns_) {
      dns_.reset(evdns_base_new(base_.get(), 0));
    }
  }
  return dns_.get();
}

void Worker::run() {
  constexpr timeval kBeat{1, 0};
  prepareWorkerThread(index_, config_.worker_scheduling);
  beat();
  evtimer_add(heartbeat_.get(), &kBeat);
  running_.store(true, std::memory_order_relaxed);
  event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY);
  running_.store(false, std::memory_order_relaxed);
  spdlog::debug("worker {} stopped", index_);
}

void Worker::beat() {
  last_beat_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                   std::memory_order_relaxed);
}

std::chrono::steady_clock::duration Worker::sinceHeartbeat() const {
  const std::chrono::steady_clock::duration last(last_beat_.load(std::memory_order_relaxed));
  return std::chrono::steady_clock::now().time_since_epoch() - last;
}

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard lock(tasks_mutex_);
    tasks_.push_back(std::move(task));
  }
  event_active(tasks_ready_.get(), 0, 0);
}

void Worker::runTasks() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(tasks_mutex_);
    ready.swap(tasks_);
  }
  for (auto& task : ready) {
    task();
  }
}

std::vector<Connection*> Worker::openConnections() const {
  std::vector<Connection*> open;
  open.reserve(connections_.size());
  for (const auto& [raw, owned] : connections_) {
    open.push_back(raw);
  }
  return open;
}

void Worker::closeConnection(Connection* connection) {
  if (connections_.count(connection) > 0) {
    connection->dispatch(Connection::Event::AdminClose);  // releases itself once closed
  }
}

void Worker::requestDrain() {
  event_active(drain_request_.get(), 0, 0);
}

void Worker::requestStop() {
  event_active(stop_request_.get(), 0, 0);
}

void Worker::acceptCallback(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len,
                            void* arg) {
  auto* bound = static_cast<Bound*>(arg);
  bound->worker->onAccept(bound->runtime, fd, addr, len);
}

void Worker::acceptErrorCallback(evconnlistener*, void* arg) {
  static_cast<Bound*>(arg)->worker->onAcceptError();
}

void Worker::onAccept(const ListenerRuntime& listener, evutil_socket_t fd, sockaddr* addr,
                      int len) {
  if (!gate_.tryEnter()) {
    metrics_.connectionRejected("max_connections");
    evutil_closesocket(fd);
    return;
  }
  if (listener.metrics != nullptr) {
    listener.metrics->accepted();
  } else {
    metrics_.connectionAccepted(listener.settings->name);
  }
  auto id = ids_.fetch_add(1, std::memory_order_relaxed) + 1;
  auto connection = std::make_unique<Connection>(
      *this, id, listener.settings->name,
      listener.contexts->current(static_cast<std::size_t>(index_)), fd, addr, listener.metrics);
  Connection* raw = connection.get();
  connections_.emplace(raw, std::move(connection));
  raw->start();
}

void Worker::onAcceptError() {
  int err = EVUTIL_SOCKET_ERROR();
  spdlog::warn("worker {}: accept failed: {}; pausing accepts for 1s", index_,
               evutil_socket_error_to_string(err));
  metrics_.connectionRejected("accept_error");
  for (auto& bound : bound_) {
    evconnlistener_disable(bound->listener.get());
  }
  evtimer_add(accept_resume_.get(), &kAcceptPause);
}

void Worker::release(Connection* connection) {
  if (connections_.erase(connection) > 0) {
    gate_.leave();
  }
  exitIfDrained();
}

void Worker::beginDrain() {
  if (draining_) {
    return;
  }
  draining_ = true;
  bound_.clear();  // closes the listening sockets: no new connections on this worker
  event_del(accept_resume_.get());
  auto tv = toTimeval(config_.limits.drain_timeout);
  evtimer_add(drain_deadline_.get(), &tv);
  exitIfDrained();
}

void Worker::closeAll() {
  draining_ = true;
  bound_.clear();
  std::vector<Connection*> open;
  open.reserve(connections_.size());
  for (auto& [raw, owned] : connections_) {
    open.push_back(raw);
  }
  if (!open.empty()) {
    spdlog::warn("worker {}: closing {} connections still open", index_, open.size());
  }
  for (Connection* connection : open) {
    connection->dispatch(Connection::Event::Shutdown);  // releases itself
  }
  exitIfDrained();
}

void Worker::exitIfDrained() {
  if (draining_ && connections_.empty()) {
    event_base_loopexit(base_.get(), nullptr);
  }
}

}  // namespace mqtls::net

#include "net/server.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>

#include "net/upstream_stream.h"
#include "ops/admin_log.h"
#include "util/descriptor_limit.h"

namespace mqtls::net {

namespace {

// The largest tls.ocsp.cache_size of any listener or SNI site (the default when none sets one).
std::size_t ocspCacheSize(const config::Config& config) {
  std::size_t size = config::OcspSettings{}.cache_size;
  for (const auto& listener : config.listeners) {
    size = std::max(size, listener.tls.ocsp.cache_size);
    for (const auto& site : listener.tls.sites) {
      size = std::max(size, site.tls.ocsp.cache_size);
    }
  }
  return size;
}

// Raises the open-file limit for limits.max_connections and says what it did; returns how many
// connections the descriptors allow (the configured number, or fewer).
std::size_t budgetDescriptors(const config::Config& config) {
  const std::size_t wanted = config.limits.max_connections;
  const DescriptorBudget budget =
      applyDescriptorBudget(wanted, reservedDescriptors(config.workers, config.listeners.size()));
  if (budget.raise_error != 0) {
    // A raise is tried only below what is needed, so a refused one always leaves fewer.
    spdlog::warn(
        "could not raise the open-file limit from {} to {}: {}; it leaves room for {} "
        "connections, fewer than limits.max_connections {}: connections beyond them are refused "
        "at accept (reason max_connections)",
        budget.soft, budget.wanted_soft, std::strerror(budget.raise_error), budget.connections,
        wanted);
  } else if (budget.limited()) {
    spdlog::warn(
        "open-file limit {} (hard {}) leaves room for {} connections, fewer than "
        "limits.max_connections {}: connections beyond {} are refused at accept "
        "(reason max_connections); raise the limit to at least {} (systemd LimitNOFILE=, "
        "podman or docker --ulimit nofile=, ulimit -n) or lower limits.max_connections",
        budget.soft,
        budget.hard == UINT64_MAX ? std::string("unlimited") : std::to_string(budget.hard),
        budget.connections, wanted, budget.connections, budget.needed);
  } else if (budget.soft != budget.soft_before) {
    spdlog::info("open-file limit raised from {} to {} for limits.max_connections {}",
                 budget.soft_before, budget.soft, wanted);
  }
  return budget.connections;
}

}  // namespace

Server::Server(const config::Config& config, ops::Metrics& metrics, std::size_t connection_limit)
    : config_(config),
      metrics_(metrics),
      connection_limit_(connection_limit),
      gate_(connection_limit),
      ocsp_cache_(std::make_unique<tls::OcspCache>(ocspCacheSize(config))) {}

Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(const config::Config& config,
                                               std::vector<tls::TlsContextPtr> contexts,
                                               tls::TlsContextPtr admin_context,
                                               ops::Metrics& metrics) {
  if (contexts.size() != config.listeners.size() ||
      std::any_of(contexts.begin(), contexts.end(), [](const auto& c) { return !c; })) {
    return Error{"internal error: a TLS context is missing for a listener"};
  }
  std::unique_ptr<Server> server(new Server(config, metrics, budgetDescriptors(config)));
  server->libraries_ =
      std::make_unique<tls::LibraryContexts>(static_cast<std::size_t>(std::max(config.workers, 1)));
  for (const auto& warning : server->libraries_->warnings()) {
    spdlog::warn("{}", warning);
  }
  if (!server->libraries_->handshakeNote().empty()) {
    spdlog::info("handshakes use the library context certificates are read in: {}",
                 server->libraries_->handshakeNote());
  }
  std::vector<tls::ContextStore*> stores;
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    // Each worker gets the listener's context built in its own library context.
    auto store = tls::ContextStore::create(std::move(contexts[i]), config.listeners[i].tls,
                                           *server->libraries_);
    if (!store) {
      return Error{"listener '" + config.listeners[i].name + "': " + store.error().message};
    }
    server->stores_.push_back(std::move(store.value()));
    server->listeners_.push_back({&config.listeners[i], server->stores_.back().get(),
                                  &metrics.listener(config.listeners[i].name)});
    stores.push_back(server->stores_.back().get());
    publishExpiries(metrics, config.listeners[i].name, config.listeners[i].tls);
  }
  metrics.maxConnections(server->connection_limit_);
  server->reloader_ = std::make_unique<Reloader>(config, std::move(stores), metrics);
  if (admin_context && config.admin.tls) {
    server->admin_store_ = std::make_unique<tls::ContextStore>(std::move(admin_context));
    server->reloader_->addAdmin(server->admin_store_.get());
    publishExpiries(metrics, "admin", *config.admin.tls);
  }
  metrics.tlsLoadedAt(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  for (int i = 0; i < config.workers; ++i) {
    auto worker = Worker::create(i, config, server->listeners_, metrics, server->gate_,
                                 server->ids_, *server->ocsp_cache_);
    if (!worker) {
      return worker.error();
    }
    server->workers_.push_back(std::move(worker.value()));
  }
  return server;
}

tls::TlsContextPtr Server::adminContext() const {
  return admin_store_ ? admin_store_->current() : nullptr;
}

int Server::run() {
  EventBasePtr signals(event_base_new());
  struct SignalState {
    Server* server;
    event_base* base;
    int received = 0;
  } state{this, signals.get()};
  auto on_signal = [](evutil_socket_t signo, short, void* arg) {
    auto* s = static_cast<SignalState*>(arg);
    if (signo == SIGHUP) {
      s->server->reload("SIGHUP");
      return;
    }
    if (signo == SIGUSR1) {
      spdlog::warn("signal {}: log level now {}", signo, ops::cycleLogLevel());
      return;
    }
    ++s->received;
    s->server->draining_.store(true);
    if (s->received == 1) {
      spdlog::info("signal {}: draining (up to {} ms); send again to close at once", signo,
                   s->server->config_.limits.drain_timeout.count());
      for (auto& worker : s->server->workers_) {
        worker->requestDrain();
      }
    } else {
      spdlog::warn("signal {} again: closing every connection now", signo);
      for (auto& worker : s->server->workers_) {
        worker->requestStop();
      }
    }
  };
  std::signal(SIGPIPE, SIG_IGN);
  EventPtr term(evsignal_new(signals.get(), SIGTERM, on_signal, &state));
  EventPtr intr(evsignal_new(signals.get(), SIGINT, on_signal, &state));
  EventPtr hup(evsignal_new(signals.get(), SIGHUP, on_signal, &state));
  EventPtr usr1(evsignal_new(signals.get(), SIGUSR1, on_signal, &state));
  event_add(term.get(), nullptr);
  event_add(intr.get(), nullptr);
  event_add(hup.get(), nullptr);
  event_add(usr1.get(), nullptr);

  if (auto watching = reloader_->start(); !watching) {
    spdlog::warn("{}", watching.error().message);
  }
  std::atomic<int> running{static_cast<int>(workers_.size())};
  std::vector<std::thread> threads;
  for (auto& worker : workers_) {
    threads.emplace_back([&worker, &running, base = signals.get()] {
      worker->run();
      if (running.fetch_sub(1) == 1) {
        event_base_loopexit(base, nullptr);  // the last worker done: stop watching signals
      }
    });
  }
  for (const auto& listener : config_.listeners) {
    spdlog::info("listening on {} port {} ({}), forwarding to {}", listener.bind_address,
                 listener.port, listener.name, describeUpstream(config_.upstream));
  }
  spdlog::info("mqtls ready: {} worker(s), max {} connections", workers_.size(), connection_limit_);
  event_base_loop(signals.get(), EVLOOP_NO_EXIT_ON_EMPTY);
  for (auto& thread : threads) {
    thread.join();
  }
  reloader_->stop();
  spdlog::info("mqtls stopped");
  return 0;
}

ReloadResult Server::reload(std::string_view trigger) {
  return reloader_->reload(trigger);
}

// Admin answers (ops::AdminActions) ----------------------------------------------------------

namespace {

std::string_view outcomeName(ListenerReload::Outcome outcome) {
  switch (outcome) {
    case ListenerReload::Outcome::Reloaded:
      return "reloaded";
    case ListenerReload::Outcome::Unchanged:
      return "unchanged";
    case ListenerReload::Outcome::Waiting:
      return "waiting";
    case ListenerReload::Outcome::Failed:
      return "failed";
    case ListenerReload::Outcome::Skipped:
      return "skipped";
  }
  return "?";
}

ops::ConnectionInfo describe(const Connection& connection, int worker,
                             std::chrono::steady_clock::time_point now) {
  const ops::AccessRecord& r = connection.record();
  ops::ConnectionInfo info;
  info.id = connection.id();
  info.worker = worker;
  info.listener = r.listener;
  info.peer = r.peer;
  info.identity = r.identity;
  info.client_id = r.client_id;
  info.tls_version = r.tls_version;
  info.state = std::string(Connection::stateName(connection.state()));
  info.resumed = r.resumed;
  info.mqtt_level = r.mqtt_level;
  info.age_seconds = std::chrono::duration<double>(now - connection.acceptedAt()).count();
  info.bytes_from_client = r.bytes_from_client;
  info.bytes_from_broker = r.bytes_from_broker;
  return info;
}

// Answers gathered from the workers' loops: each posted task adds its part and counts down.
template <typename Part>
struct Gathering {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<std::optional<Part>> parts;  // by worker index
  std::size_t waiting = 0;
};

// Runs `work(worker)` on every worker's loop and waits up to `timeout` for all of them; the
// parts of the workers that did not answer in time are nullopt.
template <typename Part, typename Work>
std::vector<std::optional<Part>> askWorkers(std::vector<std::unique_ptr<Worker>>& workers,
                                            std::chrono::milliseconds timeout, Work work) {
  auto gathering = std::make_shared<Gathering<Part>>();
  gathering->parts.resize(workers.size());
  gathering->waiting = workers.size();
  for (std::size_t i = 0; i < workers.size(); ++i) {
    Worker* worker = workers[i].get();
    if (!worker->running()) {  // not started yet, or drained: nothing open, nothing to wait for
      std::lock_guard lock(gathering->mutex);
      gathering->parts[i] = Part{};
      --gathering->waiting;
      continue;
    }
    worker->post([gathering, worker, i, work] {
      Part part = work(*worker);
      std::lock_guard lock(gathering->mutex);
      gathering->parts[i] = std::move(part);
      if (--gathering->waiting == 0) {
        gathering->done.notify_all();
      }
    });
  }
  std::unique_lock lock(gathering->mutex);
  gathering->done.wait_for(lock, timeout, [&] { return gathering->waiting == 0; });
  return gathering->parts;  // a copy: late answers may still write into the shared one
}

}  // namespace

std::string Server::notReadyReason() {
  if (draining_.load()) {
    return "draining";
  }
  for (std::size_t i = 0; i < stores_.size(); ++i) {
    if (!stores_[i]->current()) {
      return "listener '" + config_.listeners[i].name + "': no TLS context loaded";
    }
  }
  return {};  // every listener was bound on every worker by create()
}

std::vector<ops::WorkerHeartbeat> Server::heartbeats() {
  std::vector<ops::WorkerHeartbeat> beats;
  for (const auto& worker : workers_) {
    beats.push_back({worker->index(), worker->running(),
                     std::chrono::duration<double>(worker->sinceHeartbeat()).count()});
  }
  return beats;
}

ops::ReloadReport Server::reload() {
  const ReloadResult result = reload("admin");
  ops::ReloadReport report;
  report.ok = result.ok();
  report.errors = result.errors;
  report.warnings = result.warnings;
  for (const auto& listener : result.listeners) {
    report.listeners.push_back({listener.listener, std::string(outcomeName(listener.outcome)),
                                listener.outcome != ListenerReload::Outcome::Failed, listener.files,
                                listener.errors, listener.warnings});
  }
  return report;
}

ops::ConnectionList Server::connections(std::size_t limit, std::chrono::milliseconds timeout) {
  auto parts = askWorkers<std::vector<ops::ConnectionInfo>>(workers_, timeout, [](Worker& worker) {
    const auto now = std::chrono::steady_clock::now();
    std::vector<ops::ConnectionInfo> infos;
    for (const Connection* connection : worker.openConnections()) {
      infos.push_back(describe(*connection, worker.index(), now));
    }
    return infos;
  });
  ops::ConnectionList list;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i]) {
      list.unanswered.push_back(static_cast<int>(i));
      continue;
    }
    list.total += parts[i]->size();
    list.connections.insert(list.connections.end(), parts[i]->begin(), parts[i]->end());
  }
  std::sort(list.connections.begin(), list.connections.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  if (list.connections.size() > limit) {
    list.connections.resize(limit);
  }
  return list;
}

ops::CloseOutcome Server::closeConnections(const ops::ConnectionFilter& filter,
                                           std::chrono::milliseconds timeout) {
  auto parts = askWorkers<std::size_t>(workers_, timeout, [filter](Worker& worker) {
    std::size_t closed = 0;
    for (Connection* connection : worker.openConnections()) {
      if (filter.matches(connection->id(), connection->record().identity)) {
        spdlog::info("admin: closing connection {} ({})", connection->id(),
                     connection->record().peer);
        worker.closeConnection(connection);
        ++closed;
      }
    }
    return closed;
  });
  ops::CloseOutcome outcome;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i]) {
      outcome.closed += *parts[i];
    } else {
      outcome.unanswered.push_back(static_cast<int>(i));
    }
  }
  return outcome;
}

}  // namespace mqtls::net

#include "net/server.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>

#include "net/upstream_stream.h"

namespace mqtls::net {

Server::Server(const config::Config& config, ops::Metrics& metrics)
    : config_(config), metrics_(metrics), gate_(config.limits.max_connections) {}

Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(const config::Config& config,
                                               std::vector<tls::TlsContextPtr> contexts,
                                               ops::Metrics& metrics) {
  if (contexts.size() != config.listeners.size() ||
      std::any_of(contexts.begin(), contexts.end(), [](const auto& c) { return !c; })) {
    return Error{"internal error: a TLS context is missing for a listener"};
  }
  std::unique_ptr<Server> server(new Server(config, metrics));
  std::vector<tls::ContextStore*> stores;
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    server->stores_.push_back(std::make_unique<tls::ContextStore>(std::move(contexts[i])));
    server->listeners_.push_back({&config.listeners[i], server->stores_.back().get()});
    stores.push_back(server->stores_.back().get());
  }
  server->reloader_ = std::make_unique<Reloader>(config, std::move(stores), metrics);
  metrics.tlsLoadedAt(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  for (int i = 0; i < config.workers; ++i) {
    auto worker =
        Worker::create(i, config, server->listeners_, metrics, server->gate_, server->ids_);
    if (!worker) {
      return worker.error();
    }
    server->workers_.push_back(std::move(worker.value()));
  }
  return server;
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
    ++s->received;
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
  event_add(term.get(), nullptr);
  event_add(intr.get(), nullptr);
  event_add(hup.get(), nullptr);

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
  spdlog::info("mqtls ready: {} worker(s), max {} connections", workers_.size(),
               config_.limits.max_connections);
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

}  // namespace mqtls::net

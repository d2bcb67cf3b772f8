// Worker: one event loop on one thread, with its own accepting socket per listener
// (SO_REUSEPORT spreads new connections across the workers of this process; a port another
// process already listens on is refused at start, see bindSocket) and the connections it accepted.
// Connections never move between workers, so nothing on the data path is shared but the
// connection gate, the TLS context stores and the Metrics object, all thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/model.h"
#include "net/admission.h"
#include "net/connection.h"
#include "net/ocsp_decider.h"
#include "ops/metrics.h"
#include "tls/context_store.h"
#include "tls/ocsp_cache.h"
#include "util/event_ptr.h"
#include "util/result.h"

namespace mqtls::net {

// Bounds open connections across all workers.
class ConnectionGate {
 public:
  explicit ConnectionGate(std::size_t limit) : limit_(limit) {}
  bool tryEnter() {
    if (open_.fetch_add(1, std::memory_order_relaxed) >= limit_) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void leave() { open_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  const std::size_t limit_;
  std::atomic<std::size_t> open_{0};
};

// A configured listener as the workers see it.
struct ListenerRuntime {
  const config::Listener* settings;
  tls::ContextStore* contexts;
  ops::ListenerMetrics* metrics = nullptr;  // its counters (made once at start); null: looked up
};

class Worker final : public ConnectionHost {
 public:
  // Creates the loop and binds this worker's sockets. Fails with a message naming the listener
  // and address if a socket cannot be bound. Runs on the main thread. `ocsp_cache` is the
  // process's OCSP answer cache, shared by all workers.
  static Result<std::unique_ptr<Worker>> create(int index, const config::Config& config,
                                                const std::vector<ListenerRuntime>& listeners,
                                                ops::Metrics& metrics, ConnectionGate& gate,
                                                std::atomic<std::uint64_t>& ids,
                                                tls::OcspCache& ocsp_cache);
  ~Worker() override;

  // Runs the loop until the worker has drained. Call on the worker's own thread.
  void run();
  // Thread-safe: stop accepting, let connections finish, force-close them after `deadline`.
  void requestDrain();
  // Thread-safe: close every connection now (a second signal).
  void requestStop();

  // Thread-safe: runs `task` on this worker's loop thread soon; never once the loop has ended
  // (the task is then destroyed with the worker).
  void post(std::function<void()> task);
  // Thread-safe: time since the loop last turned its once-a-second heartbeat timer.
  std::chrono::steady_clock::duration sinceHeartbeat() const;
  // Thread-safe: true from run() until its loop has ended.
  bool running() const { return running_.load(std::memory_order_relaxed); }
  int index() const { return index_; }
  // Loop thread only: the open connections; closeConnection closes one for an administrator
  // (Connection::Event::AdminClose).
  std::vector<Connection*> openConnections() const;
  void closeConnection(Connection* connection);

  event_base* base() override { return base_.get(); }
  evdns_base* dns() override;
  const config::Config& config() const override { return config_; }
  ops::Metrics& metrics() override { return metrics_; }
  AdmissionDecider& admission() override { return decider_; }
  void release(Connection* connection) override;

 private:
  Worker(int index, const config::Config& config, ops::Metrics& metrics, ConnectionGate& gate,
         std::atomic<std::uint64_t>& ids, tls::OcspCache& ocsp_cache);
  Status bindListener(const ListenerRuntime& listener);
  void onAccept(const ListenerRuntime& listener, evutil_socket_t fd, sockaddr* addr, int len);
  void onAcceptError();
  void beginDrain();
  void closeAll();
  void exitIfDrained();

  static void acceptCallback(evconnlistener*, evutil_socket_t, sockaddr*, int, void*);
  static void acceptErrorCallback(evconnlistener*, void*);

  struct Bound {
    ListenerRuntime runtime;
    ListenerPtr listener;
    Worker* worker;
  };

  const int index_;
  const config::Config& config_;
  ops::Metrics& metrics_;
  ConnectionGate& gate_;
  std::atomic<std::uint64_t>& ids_;
  EventBasePtr base_;
  DnsBasePtr dns_;
  PolicyDecider policy_;
  OcspDecider decider_;  // OCSP check of client certificates, then policy_
  std::vector<std::unique_ptr<Bound>> bound_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
  EventPtr drain_request_;
  EventPtr stop_request_;
  EventPtr drain_deadline_;
  EventPtr accept_resume_;
  bool draining_ = false;
  // Heartbeat and cross-thread tasks (post()).
  void beat();
  void runTasks();
  EventPtr heartbeat_;
  EventPtr tasks_ready_;
  std::mutex tasks_mutex_;
  std::vector<std::function<void()>> tasks_;
  std::atomic<std::int64_t> last_beat_{0};  // steady_clock ticks
  std::atomic<bool> running_{false};
};

}  // namespace mqtls::net

// The inside of AdminServer, shared by admin_server.cc (lifecycle, deferred answers, the broker
// check) and admin_routes.cc (the endpoints). Everything marked "admin thread" runs only on
// the admin loop's thread (or, after stop() joined it, on the thread that called stop()).
#pragma once

#include <event2/http.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ops/admin_probe.h"
#include "ops/admin_server.h"
#include "util/event_ptr.h"

namespace mqtls::ops {

struct HttpReply {
  int code = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
};

struct EvhttpDeleter {
  void operator()(evhttp* p) const { evhttp_free(p); }
};

class AdminServer::Impl {
 public:
  using Clock = std::chrono::steady_clock;

  Impl(Settings settings, Metrics& metrics, AdminActions& actions);
  ~Impl();

  Status bind();
  void startThreads();
  void stop();
  std::uint16_t port() const { return port_; }

 private:
  // admin_server.cc: a TLS bufferevent for a new connection (evhttp's bevcb). Admin thread.
  static bufferevent* newTlsBufferevent(event_base* base, void* self);

  // admin_routes.cc: the endpoints. Admin thread.
  static void onRequest(evhttp_request* req, void* self);
  void route(evhttp_request* req);
  void health(evhttp_request* req);
  void readiness(evhttp_request* req);
  void metricsText(evhttp_request* req);
  void reload(evhttp_request* req);
  void listConnections(evhttp_request* req, const std::string& query);
  void closeConnections(evhttp_request* req, const std::string& id, const std::string& query);
  void logLevel(evhttp_request* req);

  // admin_server.cc. Admin thread unless said otherwise.
  void reply(evhttp_request* req, const HttpReply& answer);
  // Answers `req` later with what `work` returns, computed on the helper thread.
  void defer(evhttp_request* req, std::function<HttpReply()> work);
  std::uint64_t park(evhttp_request* req);
  void answerParked(std::uint64_t ticket, const HttpReply& answer);
  void deliverResults();
  void jobsLoop();  // helper thread
  HttpReply readinessNow() const;
  bool upstreamFresh(Clock::time_point now) const;
  void onProbeTick();
  void onProbeDone(bool ok, const std::string& detail);

  Settings settings_;
  Metrics& metrics_;
  AdminActions& actions_;
  EventBasePtr base_;
  std::unique_ptr<evhttp, EvhttpDeleter> http_;
  std::uint16_t port_ = 0;
  std::unique_ptr<UpstreamProbe> probe_;
  EventPtr probe_tick_;
  EventPtr results_ready_;
  std::thread loop_thread_;
  std::thread jobs_thread_;
  bool stopped_ = false;

  // Admin thread.
  std::uint64_t next_ticket_ = 0;
  std::unordered_map<std::uint64_t, evhttp_request*> parked_;
  std::vector<std::uint64_t> readiness_waiters_;
  Clock::time_point watched_until_{};
  std::optional<Clock::time_point> checked_at_;
  bool upstream_ok_ = false;
  std::string upstream_detail_ = "not checked yet";

  // Shared with the helper thread, under jobs_mutex_.
  struct Job {
    std::uint64_t ticket;
    std::function<HttpReply()> work;
  };
  std::mutex jobs_mutex_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  std::vector<std::pair<std::uint64_t, HttpReply>> results_;
  bool jobs_stopping_ = false;
};

// admin_json.cc
std::string toJson(const ReloadReport& report);
std::string toJson(const ConnectionList& list);

}  // namespace mqtls::ops

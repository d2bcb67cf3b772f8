// AdminServer, the endpoints (the table is in admin_server.h). Admin thread.
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <charconv>

#include "ops/admin_log.h"
#include "ops/admin_server_impl.h"
#include "ops/process_metrics.h"

namespace mqtls::ops {
namespace {

// True when `req` arrived over a TLS bufferevent (see Impl::newTlsBufferevent).
bool overTls(evhttp_request* req) {
  evhttp_connection* connection = evhttp_request_get_connection(req);
  bufferevent* bev =
      connection != nullptr ? evhttp_connection_get_bufferevent(connection) : nullptr;
  return bev != nullptr && bufferevent_openssl_get_ssl(bev) != nullptr;
}

constexpr std::size_t kDefaultLimit = 1000;
constexpr std::size_t kMaxLimit = 100'000;
constexpr const char* kJson = "application/json";

std::string methodName(evhttp_cmd_type method) {
  switch (method) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    default:
      return "OTHER";
  }
}

bool isMutation(evhttp_cmd_type method) {
  return method == EVHTTP_REQ_POST || method == EVHTTP_REQ_PUT || method == EVHTTP_REQ_DELETE;
}

// The decoded value of `key` in a query string; nullopt when absent.
std::optional<std::string> queryParameter(const std::string& query, const char* key) {
  evkeyvalq params{};
  if (evhttp_parse_query_str(query.c_str(), &params) != 0) {
    evhttp_clear_headers(&params);
    return std::nullopt;
  }
  std::optional<std::string> value;
  if (const char* found = evhttp_find_header(&params, key)) {
    value = found;
  }
  evhttp_clear_headers(&params);
  return value;
}

std::optional<std::uint64_t> parseNumber(const std::string& text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return value;
}

std::string peerOf(evhttp_request* req) {
  char* address = nullptr;
  ev_uint16_t port = 0;
  if (evhttp_connection* conn = evhttp_request_get_connection(req)) {
    evhttp_connection_get_peer(conn, &address, &port);
  }
  return address != nullptr ? std::string(address) + ":" + std::to_string(port) : "?";
}

std::string requestBody(evhttp_request* req) {
  evbuffer* input = evhttp_request_get_input_buffer(req);
  std::string body(evbuffer_get_length(input), '\0');
  evbuffer_copyout(input, body.data(), body.size());
  return body;
}

}  // namespace

void AdminServer::Impl::onRequest(evhttp_request* req, void* self) {
  static_cast<Impl*>(self)->route(req);
}

void AdminServer::Impl::route(evhttp_request* req) {
  if (settings_.tls_context && !overTls(req)) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    reply(req, HttpReply{400, "this admin listener speaks HTTPS only\n"});
    return;
  }
  const evhttp_cmd_type method = evhttp_request_get_command(req);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  const char* raw_query = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
  const std::string path = raw_path != nullptr && *raw_path != '\0' ? raw_path : "/";
  const std::string query = raw_query != nullptr ? raw_query : "";
  constexpr std::string_view kConnectionPrefix = "/connections/";

  // Which methods the path takes, and the handler for the one used.
  std::string allowed;
  std::function<void()> handler;
  const bool get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
  if (path == "/healthz") {
    allowed = "GET, HEAD";
    handler = get ? std::function<void()>([&] { health(req); }) : nullptr;
  } else if (path == "/readyz") {
    allowed = "GET, HEAD";
    handler = get ? std::function<void()>([&] { readiness(req); }) : nullptr;
  } else if (path == "/metrics") {
    allowed = "GET, HEAD";
    handler = get ? std::function<void()>([&] { metricsText(req); }) : nullptr;
  } else if (path == "/reload") {
    allowed = "POST";
    handler = method == EVHTTP_REQ_POST ? std::function<void()>([&] { reload(req); }) : nullptr;
  } else if (path == "/connections") {
    allowed = "GET, HEAD, DELETE";
    if (get) {
      handler = [&] { listConnections(req, query); };
    } else if (method == EVHTTP_REQ_DELETE) {
      handler = [&] { closeConnections(req, "", query); };
    }
  } else if (path.size() > kConnectionPrefix.size() && path.starts_with(kConnectionPrefix)) {
    allowed = "DELETE";
    if (method == EVHTTP_REQ_DELETE) {
      handler = [&] { closeConnections(req, path.substr(kConnectionPrefix.size()), ""); };
    }
  } else if (path == "/log/level") {
    allowed = "GET, HEAD, PUT";
    handler =
        get || method == EVHTTP_REQ_PUT ? std::function<void()>([&] { logLevel(req); }) : nullptr;
  }

  if (allowed.empty()) {
    reply(req, HttpReply{404,
                         "no such endpoint; see /healthz, /readyz, /metrics, /reload, "
                         "/connections, /log/level\n"});
  } else if (!handler) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allowed.c_str());
    reply(req, HttpReply{405, path + " takes " + allowed + "\n"});
  } else if (isMutation(method) && !settings_.allow_mutations) {
    spdlog::warn("admin: {} {} from {} refused: admin.allow_mutations is false", methodName(method),
                 path, peerOf(req));
    reply(req, HttpReply{403, "changes are disabled (admin.allow_mutations: false)\n"});
  } else {
    if (isMutation(method)) {
      spdlog::info("admin: {} {} from {}", methodName(method), path, peerOf(req));
    }
    handler();
  }
}

void AdminServer::Impl::health(evhttp_request* req) {
  std::string stalled;
  for (const auto& beat : actions_.heartbeats()) {
    const double limit = std::chrono::duration<double>(settings_.heartbeat_stale).count();
    if (beat.running && beat.seconds_since_beat > limit) {
      stalled += (stalled.empty() ? "" : "; ") + std::string("worker ") +
                 std::to_string(beat.worker) + ": event loop stalled for " +
                 std::to_string(static_cast<long>(beat.seconds_since_beat)) + " s";
    }
  }
  reply(req, stalled.empty() ? HttpReply{200, "ok\n"} : HttpReply{503, stalled + "\n"});
}

void AdminServer::Impl::readiness(evhttp_request* req) {
  const auto now = Clock::now();
  watched_until_ = now + settings_.readiness_watch;
  if (std::string reason = actions_.notReadyReason(); !reason.empty()) {
    reply(req, HttpReply{503, reason + "\n"});
    return;
  }
  if (upstreamFresh(now)) {
    reply(req, readinessNow());
    return;
  }
  readiness_waiters_.push_back(park(req));  // answered when the check below ends
  probe_->start();
}

void AdminServer::Impl::metricsText(evhttp_request* req) {
  prometheus::TextSerializer serializer;
  std::vector<prometheus::MetricFamily> families = metrics_.registry().Collect();
  for (auto& family : collectProcessMetrics()) {
    families.push_back(std::move(family));
  }
  reply(req,
        HttpReply{200, serializer.Serialize(families), "text/plain; version=0.0.4; charset=utf-8"});
}

void AdminServer::Impl::reload(evhttp_request* req) {
  defer(req, [this] {
    const ReloadReport report = actions_.reload();
    return HttpReply{report.ok ? 200 : 500, toJson(report) + "\n", kJson};
  });
}

void AdminServer::Impl::listConnections(evhttp_request* req, const std::string& query) {
  std::size_t limit = kDefaultLimit;
  if (auto text = queryParameter(query, "limit")) {
    auto value = parseNumber(*text);
    if (!value || *value < 1 || *value > kMaxLimit) {
      reply(req, HttpReply{400, "limit must be an integer between 1 and " +
                                    std::to_string(kMaxLimit) + "\n"});
      return;
    }
    limit = static_cast<std::size_t>(*value);
  }
  defer(req, [this, limit] {
    return HttpReply{
        200, toJson(actions_.connections(limit, settings_.worker_answer_timeout)) + "\n", kJson};
  });
}

void AdminServer::Impl::closeConnections(evhttp_request* req, const std::string& id,
                                         const std::string& query) {
  ConnectionFilter filter;
  if (!id.empty()) {
    filter.id = parseNumber(id);
    if (!filter.id) {
      reply(req, HttpReply{400, "'" + id + "' is not a connection id\n"});
      return;
    }
  } else {
    filter.identity = queryParameter(query, "identity");
    if (!filter.identity || filter.identity->empty()) {
      reply(req, HttpReply{400,
                           "say which connections: /connections/{id} or "
                           "/connections?identity=X\n"});
      return;
    }
  }
  defer(req, [this, filter] {
    const CloseOutcome outcome = actions_.closeConnections(filter, settings_.worker_answer_timeout);
    std::string body =
        "{\"closed\":" + std::to_string(outcome.closed) + ",\"unanswered_workers\":[";
    for (std::size_t i = 0; i < outcome.unanswered.size(); ++i) {
      body += (i == 0 ? "" : ",") + std::to_string(outcome.unanswered[i]);
    }
    body += "]}\n";
    return HttpReply{outcome.closed > 0 ? 200 : 404, body, kJson};
  });
}

void AdminServer::Impl::logLevel(evhttp_request* req) {
  if (evhttp_request_get_command(req) == EVHTTP_REQ_PUT) {
    auto level = parseLevelBody(requestBody(req));
    if (!level) {
      reply(req, HttpReply{400,
                           "give a level: trace, debug, info, warn, error, critical or off "
                           "(as the body, or {\"level\": \"debug\"})\n"});
      return;
    }
    const std::string before = ops::logLevel();
    setLogLevel(*level);
    spdlog::warn("admin: log level {} -> {}", before, *level);
  }
  reply(req, HttpReply{200, "{\"level\":\"" + ops::logLevel() + "\"}\n", kJson});
}

}  // namespace mqtls::ops

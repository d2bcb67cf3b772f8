// JSON renderings of the admin answers. Every string goes through jsonEscape (ops/logging.h).
#include <cstdio>

#include "ops/admin_server_impl.h"
#include "ops/logging.h"

namespace mqtls::ops {
namespace {

std::string quoted(const std::string& text) {
  return "\"" + jsonEscape(text) + "\"";
}

std::string strings(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    out += (i == 0 ? "" : ",") + quoted(items[i]);
  }
  return out + "]";
}

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", value);
  return buffer;
}

std::string toJson(const ListenerReloadReport& listener) {
  return "{\"listener\":" + quoted(listener.listener) +
         ",\"ok\":" + (listener.ok ? "true" : "false") +
         ",\"outcome\":" + quoted(listener.outcome) + ",\"files\":" + strings(listener.files) +
         ",\"error\":" + quoted(listener.errors.empty() ? "" : listener.errors.front()) +
         ",\"errors\":" + strings(listener.errors) + ",\"warnings\":" + strings(listener.warnings) +
         "}";
}

std::string toJson(const ConnectionInfo& c) {
  return "{\"id\":" + std::to_string(c.id) + ",\"worker\":" + std::to_string(c.worker) +
         ",\"listener\":" + quoted(c.listener) + ",\"peer\":" + quoted(c.peer) +
         ",\"identity\":" + quoted(c.identity) + ",\"client_id\":" + quoted(c.client_id) +
         ",\"tls_version\":" + quoted(c.tls_version) +
         ",\"resumed\":" + (c.resumed ? "true" : "false") +
         ",\"mqtt_level\":" + std::to_string(c.mqtt_level) + ",\"state\":" + quoted(c.state) +
         ",\"age_seconds\":" + number(c.age_seconds) +
         ",\"bytes_from_client\":" + std::to_string(c.bytes_from_client) +
         ",\"bytes_from_broker\":" + std::to_string(c.bytes_from_broker) + "}";
}

}  // namespace

std::string toJson(const ReloadReport& report) {
  std::string out = "{\"ok\":" + std::string(report.ok ? "true" : "false") +
                    ",\"errors\":" + strings(report.errors) +
                    ",\"warnings\":" + strings(report.warnings) + ",\"listeners\":[";
  for (std::size_t i = 0; i < report.listeners.size(); ++i) {
    out += (i == 0 ? "" : ",") + toJson(report.listeners[i]);
  }
  return out + "]}";
}

std::string toJson(const ConnectionList& list) {
  std::string out = "{\"total\":" + std::to_string(list.total) + ",\"connections\":[";
  for (std::size_t i = 0; i < list.connections.size(); ++i) {
    out += (i == 0 ? "" : ",") + toJson(list.connections[i]);
  }
  out += "],\"unanswered_workers\":[";
  for (std::size_t i = 0; i < list.unanswered.size(); ++i) {
    out += (i == 0 ? "" : ",") + std::to_string(list.unanswered[i]);
  }
  return out + "]}";
}

}  // namespace mqtls::ops

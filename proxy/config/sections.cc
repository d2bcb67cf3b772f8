// Readers for the small sections: workers, log, metrics, upstream, limits.
#include "config/sections.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <charconv>
#include <thread>

namespace mqtls::config {
namespace {

constexpr int kMaxWorkers = 256;

bool isIpv6Literal(const std::string& text) {
  in6_addr addr{};
  return inet_pton(AF_INET6, text.c_str(), &addr) == 1;
}

bool isPort(std::string_view text) {
  int port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && end == text.data() + text.size() && port >= 1 && port <= 65535;
}

}  // namespace

std::string checkListenAddress(const std::string& listen) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos || !isPort(std::string_view(listen).substr(colon + 1))) {
    return "expected 'host:port' with a port between 1 and 65535";
  }
  const std::string host = listen.substr(0, colon);
  if (host.empty()) {
    return "the host is missing";
  }
  if (host.front() == '[') {
    if (host.back() != ']' || !isIpv6Literal(host.substr(1, host.size() - 2))) {
      return "'" + host + "' is not a bracketed IPv6 address";
    }
  } else if (host.find(':') != std::string::npos) {
    return "an IPv6 address needs brackets, e.g. [::1]:9090";
  }
  return {};
}

void readWorkers(Context& ctx, const Field& field, int& workers) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  workers = std::clamp(cores, 1, kMaxWorkers);
  auto text = readScalar(ctx, field, "'auto' or an integer");
  if (!text || *text == "auto") {
    return;
  }
  int value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size() || value < 1 || value > kMaxWorkers) {
    ctx.diag.add(field.mark, field.path,
                 "invalid worker count '" + *text + "'; use 'auto' or an integer between 1 and " +
                     std::to_string(kMaxWorkers));
    return;
  }
  workers = value;
}

void readLogging(Context& ctx, const Field& field, Logging& log) {
  Section section(ctx, field, {"level", "format"});
  static constexpr std::string_view kLevels[] = {"trace", "debug",    "info", "warn",
                                                 "error", "critical", "off"};
  if (auto index = readChoice(ctx, section.field("level"), kLevels)) {
    log.level = std::string(kLevels[*index]);
  }
  readEnum<LogFormat>(ctx, section.field("format"),
                      {{"text", LogFormat::Text}, {"json", LogFormat::Json}}, log.format);
}

void readMetrics(Context& ctx, const Field& field, Metrics& metrics) {
  Section section(ctx, field, {"listen"});
  const Field listen = section.field("listen");
  auto text = readString(ctx, listen);
  if (!text || text->empty()) {
    return;
  }
  if (std::string problem = checkListenAddress(*text); !problem.empty()) {
    ctx.diag.add(listen.mark, listen.path,
                 "invalid address '" + *text + "': " + problem +
                     "; use e.g. 127.0.0.1:9090, or \"\" to disable metrics");
    return;
  }
  metrics.listen = *text;
}

void readUpstream(Context& ctx, const Field& field, Upstream& upstream) {
  Section section(ctx, field, {"host", "port", "unix_socket", "connect_timeout"});
  const Field host = section.field("host");
  if (auto text = readString(ctx, host)) {
    if (text->empty()) {
      ctx.diag.add(host.mark, host.path, "the host is empty; give a broker name or address");
    } else {
      upstream.host = *text;
    }
  }
  if (auto port = readInteger(ctx, section.field("port"), 1, 65535)) {
    upstream.port = static_cast<std::uint16_t>(*port);
  }
  const Field socket = section.field("unix_socket");
  if (auto text = readString(ctx, socket); text && !text->empty()) {
    auto path = readPath(ctx, socket);
    if (path && path->size() >= sizeof(sockaddr_un{}.sun_path)) {
      ctx.diag.add(socket.mark, socket.path,
                   "socket path '" + *path + "' is too long for a Unix socket (at most " +
                       std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                       " bytes); use a shorter path");
    } else if (path) {
      upstream.unix_socket = *path;
    }
  }
  if (auto timeout =
          readDuration(ctx, section.field("connect_timeout"), Duration(1), kMaxDuration)) {
    upstream.connect_timeout = *timeout;
  }
}

void readLimits(Context& ctx, const Field& field, Limits& limits) {
  Section section(ctx, field,
                  {"handshake_timeout", "connect_timeout", "max_connect_size", "max_connections",
                   "buffer_limit", "drain_timeout", "admission_timeout", "packet_framing",
                   "max_rewritten_packet"});
  auto duration = [&](std::string_view key, Duration& out) {
    if (auto value = readDuration(ctx, section.field(key), Duration(1), kMaxDuration)) {
      out = *value;
    }
  };
  duration("handshake_timeout", limits.handshake_timeout);
  duration("connect_timeout", limits.connect_timeout);
  duration("drain_timeout", limits.drain_timeout);
  duration("admission_timeout", limits.admission_timeout);
  readEnum<bool>(ctx, section.field("packet_framing"), {{"auto", false}, {"always", true}},
                 limits.frame_client_packets);
  // 268435460 = the largest MQTT remaining length (268435455) plus a 5-byte fixed header.
  if (auto size = readSize(ctx, section.field("max_connect_size"), 2, 268'435'460)) {
    limits.max_connect_size = *size;
  }
  if (auto size = readSize(ctx, section.field("max_rewritten_packet"), 1024, 268'435'460)) {
    limits.max_rewritten_packet = *size;
  }
  if (auto count = readInteger(ctx, section.field("max_connections"), 1, 1'000'000)) {
    limits.max_connections = static_cast<std::size_t>(*count);
  }
  if (auto size = readSize(ctx, section.field("buffer_limit"), 1024, 1024 * 1024 * 1024)) {
    limits.buffer_limit = *size;
  }
}

}  // namespace mqtls::config

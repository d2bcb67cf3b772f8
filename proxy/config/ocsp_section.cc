// Reader for a listener's tls.ocsp section: OCSP checking of client certificates. The check runs
// after the TLS handshake and before the broker is dialled (OpenSSL 3.0 cannot suspend a server
// handshake while a request runs); see net/ocsp_decider.h.
#include <strings.h>

#include <algorithm>
#include <cctype>

#include "config/sections.h"

namespace mqtls::config {
namespace {

// Why `url` is not a usable http:// responder URL, or empty if it is. Accepts
// http://host[:port][/path]; https is refused (OCSP answers are signed, so responders serve
// plain http, and the fetcher speaks only http).
std::string responderProblem(const std::string& url) {
  constexpr std::string_view kHttp = "http://";
  if (url.size() >= 8 && strncasecmp(url.c_str(), "https://", 8) == 0) {
    return "https OCSP responders are not supported; OCSP answers are signed, so use the "
           "responder's plain http:// URL";
  }
  if (url.size() < kHttp.size() || strncasecmp(url.c_str(), kHttp.data(), kHttp.size()) != 0) {
    return "expected an http:// URL such as http://ocsp.example.com:8080/";
  }
  const std::string rest = url.substr(kHttp.size());
  const std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  std::string host = authority;
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    host = close == std::string::npos ? "" : authority.substr(0, close + 1);
    if (close != std::string::npos && close + 1 < authority.size()) {
      port = authority[close + 1] == ':' ? authority.substr(close + 2) : "x";
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || host.find('@') != std::string::npos) {
    return "the URL names no host; write http://<host>[:port]/";
  }
  if (!port.empty()) {
    const bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
                          return std::isdigit(static_cast<unsigned char>(c)) != 0;
                        });
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return "the port '" + port + "' is not a number from 1 to 65535";
    }
  }
  return {};
}

}  // namespace

void readOcsp(Context& ctx, const Field& field, TlsSettings& tls) {
  Section section(ctx, field, {"mode", "responder", "timeout", "policy", "cache_size"});
  if (!field.present() || !section.isMap()) {
    return;
  }
  OcspSettings& ocsp = tls.ocsp;
  const Field mode = section.field("mode");
  if (readEnum<OcspMode>(ctx, mode, {{"off", OcspMode::Off}, {"on", OcspMode::On}}, ocsp.mode) &&
      ocsp.mode == OcspMode::On && tls.client_auth == ClientAuth::None) {
    ctx.diag.add(mode.mark, mode.path,
                 "OCSP checks client certificates, but client_auth is none; set 'client_auth: "
                 "required' (or optional) with a client_ca, or set 'mode: off'");
  }
  const Field responder = section.field("responder");
  if (auto url = readString(ctx, responder); url && !url->empty()) {  // "": not set
    if (auto problem = responderProblem(*url); !problem.empty()) {
      ctx.diag.add(responder.mark, responder.path, problem);
    } else {
      ocsp.responder = *url;
    }
  }
  if (auto timeout = readDuration(ctx, section.field("timeout"), std::chrono::milliseconds(100),
                                  std::chrono::seconds(60))) {
    ocsp.timeout = *timeout;
  }
  readEnum<OcspPolicy>(
      ctx, section.field("policy"),
      {{"fail_closed", OcspPolicy::FailClosed}, {"fail_open", OcspPolicy::FailOpen}}, ocsp.policy);
  if (auto n = readInteger(ctx, section.field("cache_size"), 0, 10'000'000)) {
    ocsp.cache_size = static_cast<std::size_t>(*n);
  }
}

}  // namespace mqtls::config

// OcspFetcher: one asynchronous OCSP request over HTTP (RFC 6960 appendix A: POST of the DER
// request with Content-Type application/ocsp-request), on a worker's event loop with libevent's
// evhttp, one connection per request. Bounded by a total timeout and a response size limit.
// Destroying the fetcher cancels it: its callback is never called afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include "util/event_ptr.h"
#include "util/result.h"

namespace mqtls::net {

struct OcspFetchResult {
  bool ok = false;                 // an HTTP 200 answer within the limits arrived
  std::vector<std::uint8_t> body;  // the DER response when ok
  std::string error;               // why not, for the log ("timed out after 2000 ms", ...)
};

class OcspFetcher {
 public:
  using Callback = std::function<void(OcspFetchResult)>;

  // Starts POSTing `request_der` to `url` (http://host[:port][/path]) on `base`, resolving names
  // with `dns`. `done` is called exactly once, from the loop and never before start() returns,
  // unless the fetcher is destroyed first; it may destroy the fetcher. Fails at once (with the
  // reason) when the URL is not a usable http URL or the connection cannot be set up.
  static Result<std::unique_ptr<OcspFetcher>> start(event_base* base, evdns_base* dns,
                                                    const std::string& url,
                                                    const std::vector<std::uint8_t>& request_der,
                                                    std::chrono::milliseconds timeout,
                                                    std::size_t max_response, Callback done);
  ~OcspFetcher();
  OcspFetcher(const OcspFetcher&) = delete;
  OcspFetcher& operator=(const OcspFetcher&) = delete;

 private:
  OcspFetcher(std::size_t max_response, std::chrono::milliseconds timeout, Callback done);
  static void onResponse(evhttp_request* request, void* arg);
  static void onError(evhttp_request_error error, void* arg);
  // Records the result and schedules its delivery on the loop (never from inside evhttp).
  void finish(OcspFetchResult result);
  void deliver();

  struct ConnectionDeleter {
    void operator()(evhttp_connection* p) const { evhttp_connection_free(p); }
  };

  const std::size_t max_response_;
  const std::chrono::milliseconds timeout_;
  Callback done_;
  std::unique_ptr<evhttp_connection, ConnectionDeleter> connection_;
  EventPtr timer_;
  EventPtr deliver_;
  OcspFetchResult result_;
  std::string transport_error_;  // set by onError before onResponse
  bool finished_ = false;
};

}  // namespace mqtls::net

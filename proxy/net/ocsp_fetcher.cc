#include "net/ocsp_fetcher.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

namespace mqtls::net {
namespace {

struct UriDeleter {
  void operator()(evhttp_uri* p) const { evhttp_uri_free(p); }
};

const char* requestErrorName(evhttp_request_error error) {
  switch (error) {
    case EVREQ_HTTP_TIMEOUT:
      return "timed out";
    case EVREQ_HTTP_EOF:
      return "connection closed before an answer";
    case EVREQ_HTTP_INVALID_HEADER:
      return "invalid HTTP answer";
    case EVREQ_HTTP_BUFFER_ERROR:
      return "connection failed";
    case EVREQ_HTTP_REQUEST_CANCEL:
      return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG:
      return "answer too large";
  }
  return "HTTP error";
}

}  // namespace

OcspFetcher::OcspFetcher(std::size_t max_response, std::chrono::milliseconds timeout, Callback done)
    : max_response_(max_response), timeout_(timeout), done_(std::move(done)) {}

// The connection goes first: evhttp_connection_free drops its pending request without calling
// back, so nothing reaches this object once destruction started.
OcspFetcher::~OcspFetcher() {
  connection_.reset();
}

Result<std::unique_ptr<OcspFetcher>> OcspFetcher::start(
    event_base* base, evdns_base* dns, const std::string& url,
    const std::vector<std::uint8_t>& request_der, std::chrono::milliseconds timeout,
    std::size_t max_response, Callback done) {
  std::unique_ptr<evhttp_uri, UriDeleter> uri(evhttp_uri_parse(url.c_str()));
  const char* scheme = uri ? evhttp_uri_get_scheme(uri.get()) : nullptr;
  const char* host = uri ? evhttp_uri_get_host(uri.get()) : nullptr;
  if (scheme == nullptr || std::string(scheme) != "http" || host == nullptr || *host == '\0') {
    return Error{"not an http:// OCSP URL: '" + url + "'"};
  }
  const int port = evhttp_uri_get_port(uri.get()) > 0 ? evhttp_uri_get_port(uri.get()) : 80;
  std::string path =
      evhttp_uri_get_path(uri.get()) != nullptr ? evhttp_uri_get_path(uri.get()) : "";
  if (path.empty()) {
    path = "/";
  }
  if (const char* query = evhttp_uri_get_query(uri.get())) {
    path += std::string("?") + query;
  }
  std::unique_ptr<OcspFetcher> self(new OcspFetcher(max_response, timeout, std::move(done)));
  self->timer_.reset(evtimer_new(
      base,
      [](evutil_socket_t, short, void* arg) {
        auto* fetcher = static_cast<OcspFetcher*>(arg);
        fetcher->finish(
            {false, {}, "timed out after " + std::to_string(fetcher->timeout_.count()) + " ms"});
      },
      self.get()));
  self->deliver_.reset(event_new(
      base, -1, 0,
      [](evutil_socket_t, short, void* arg) { static_cast<OcspFetcher*>(arg)->deliver(); },
      self.get()));
  // Brackets of an IPv6 literal are part of the URL, not of the address to connect to.
  std::string address = host;
  if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  self->connection_.reset(
      evhttp_connection_base_new(base, dns, address.c_str(), static_cast<unsigned short>(port)));
  if (!self->timer_ || !self->deliver_ || !self->connection_) {
    return Error{"cannot set up a connection to " + url};
  }
  evhttp_connection* connection = self->connection_.get();
  const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  evhttp_connection_set_timeout_tv(connection, &tv);
  evhttp_connection_set_retries(connection, 0);
  evhttp_connection_set_max_body_size(connection, static_cast<ev_ssize_t>(max_response));
  evhttp_request* request = evhttp_request_new(&OcspFetcher::onResponse, self.get());
  if (request == nullptr) {
    return Error{"cannot allocate an HTTP request"};
  }
  evhttp_request_set_error_cb(request, &OcspFetcher::onError);
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  const std::string host_header =
      port == 80 ? std::string(host) : host + (":" + std::to_string(port));
  evhttp_add_header(headers, "Host", host_header.c_str());
  evhttp_add_header(headers, "Content-Type", "application/ocsp-request");
  evhttp_add_header(headers, "Accept", "application/ocsp-response");
  evhttp_add_header(headers, "Connection", "close");
  evbuffer_add(evhttp_request_get_output_buffer(request), request_der.data(), request_der.size());
  if (evhttp_make_request(connection, request, EVHTTP_REQ_POST, path.c_str()) != 0) {
    return Error{"cannot send the OCSP request to " + url};
  }
  evtimer_add(self->timer_.get(), &tv);
  return self;
}

void OcspFetcher::onError(evhttp_request_error error, void* arg) {
  static_cast<OcspFetcher*>(arg)->transport_error_ = requestErrorName(error);
}

void OcspFetcher::onResponse(evhttp_request* request, void* arg) {
  auto* self = static_cast<OcspFetcher*>(arg);
  const int code = request != nullptr ? evhttp_request_get_response_code(request) : 0;
  if (code == 0) {
    self->finish(
        {false, {}, self->transport_error_.empty() ? "no answer" : self->transport_error_});
    return;
  }
  if (code != HTTP_OK) {
    self->finish({false, {}, "HTTP status " + std::to_string(code)});
    return;
  }
  evbuffer* input = evhttp_request_get_input_buffer(request);
  const std::size_t size = evbuffer_get_length(input);
  if (size > self->max_response_) {
    self->finish(
        {false, {}, "answer larger than " + std::to_string(self->max_response_) + " bytes"});
    return;
  }
  OcspFetchResult result{true, std::vector<std::uint8_t>(size), {}};
  evbuffer_copyout(input, result.body.data(), size);
  self->finish(std::move(result));
}

void OcspFetcher::finish(OcspFetchResult result) {
  if (finished_) {
    return;
  }
  finished_ = true;
  result_ = std::move(result);
  event_del(timer_.get());
  event_active(deliver_.get(), 0, 0);
}

// Called from the loop, outside evhttp: frees the connection, then calls back last.
void OcspFetcher::deliver() {
  connection_.reset();
  Callback done = std::move(done_);
  OcspFetchResult result = std::move(result_);
  done(std::move(result));
}

}  // namespace mqtls::net

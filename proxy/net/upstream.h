// Upstream dialing: a non-blocking connect to the broker (TCP by name or address, or a Unix
// socket). Completion arrives on the returned bufferevent's event callback as
// BEV_EVENT_CONNECTED or BEV_EVENT_ERROR; name resolution goes through evdns, never blocking.
#pragma once

#include <string>

#include "config/model.h"
#include "util/event_ptr.h"

namespace mqtls::net {

// Starts connecting; returns nullptr (with `error` set) if the attempt cannot even start.
BufferEventPtr dialUpstream(event_base* base, evdns_base* dns, const config::Upstream& upstream,
                            std::string& error);

// Why a dial failed, from the bufferevent that reported BEV_EVENT_ERROR.
std::string dialErrorText(bufferevent* bev);

// "host:port" or "unix:/path", for logs.
std::string describeUpstream(const config::Upstream& upstream);

}  // namespace mqtls::net

// RAII owners for libevent handles.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <memory>

namespace mqtls {

struct EventBaseDeleter {
  void operator()(event_base* p) const { event_base_free(p); }
};
struct EventDeleter {
  void operator()(event* p) const { event_free(p); }
};
struct BufferEventDeleter {
  void operator()(bufferevent* p) const { bufferevent_free(p); }
};
struct EvBufferDeleter {
  void operator()(evbuffer* p) const { evbuffer_free(p); }
};
struct ListenerDeleter {
  void operator()(evconnlistener* p) const { evconnlistener_free(p); }
};
struct DnsBaseDeleter {
  void operator()(evdns_base* p) const { evdns_base_free(p, 1); }
};

using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;
using BufferEventPtr = std::unique_ptr<bufferevent, BufferEventDeleter>;
using EvBufferPtr = std::unique_ptr<evbuffer, EvBufferDeleter>;
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerDeleter>;
using DnsBasePtr = std::unique_ptr<evdns_base, DnsBaseDeleter>;

}  // namespace mqtls

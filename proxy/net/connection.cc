// Connection, first part: construction, the dispatch table and the transitions.
#include "net/connection.h"

#include <spdlog/spdlog.h>

#include <cassert>

#include "tls/verified_chains.h"

namespace mqtls::net {

Connection::Connection(ConnectionHost& host, std::uint64_t id, std::string listener_name,
                       tls::TlsContextPtr tls, int fd, const sockaddr* peer,
                       ops::ListenerMetrics* listener_metrics)
    : host_(host),
      id_(id),
      listener_name_(std::move(listener_name)),
      listener_metrics_(listener_metrics != nullptr ? *listener_metrics
                                                    : host.metrics().listener(listener_name_)),
      tls_(std::move(tls)),
      accepted_at_(std::chrono::steady_clock::now()) {
  client_ = std::make_unique<ClientTlsStream>(*this, host_.base(), *tls_, fd, peer);
  record_.id = id;
  record_.listener = listener_name_;
  record_.generation = tls_->reloadGeneration();
  record_.peer = client_->peerAddress();
  deadline_.reset(evtimer_new(
      host_.base(),
      [](evutil_socket_t, short, void* self) {
        static_cast<Connection*>(self)->dispatch(Event::DeadlineExpired);
      },
      this));
  host_.metrics().activeConnections(1);
  listener_metrics_.opened();
}

Connection::~Connection() {
  host_.metrics().activeConnections(-1);
  listener_metrics_.closed();
}

void Connection::start() {
  if (!deadline_ || !client_->start()) {
    close("internal_error", "cannot allocate connection state");
    host_.release(this);
    return;
  }
  armDeadline(host_.config().limits.handshake_timeout);
}

std::string_view Connection::stateName(State state) {
  switch (state) {
    case State::Handshaking:
      return "handshaking";
    case State::AwaitingConnect:
      return "awaiting_connect";
    case State::Admitting:
      return "admitting";
    case State::Dialing:
      return "dialing";
    case State::Streaming:
      return "streaming";
    case State::Refusing:
      return "refusing";
    case State::Flushing:
      return "flushing";
    case State::Lingering:
      return "lingering";
    case State::Closed:
      return "closed";
  }
  return "?";
}

// The arrows of the diagram in connection.h; Closed is reachable from everywhere.
bool Connection::legalTransition(State from, State to) {
  if (to == State::Closed) {
    return from != State::Closed;
  }
  switch (from) {
    case State::Handshaking:
      return to == State::AwaitingConnect || to == State::Lingering;
    case State::AwaitingConnect:
      return to == State::Admitting || to == State::Refusing;
    case State::Admitting:
      return to == State::Dialing || to == State::Refusing;
    case State::Dialing:
      return to == State::Streaming || to == State::Refusing;
    case State::Streaming:
      return to == State::Flushing || to == State::Lingering;
    case State::Refusing:
    case State::Flushing:
      return to == State::Lingering;
    case State::Lingering:
    case State::Closed:
      return false;
  }
  return false;
}

void Connection::transition(State to) {
  assert(legalTransition(state_, to) && "illegal connection state transition");
  if (!legalTransition(state_, to)) {
    spdlog::error("connection {}: illegal transition {} -> {}", id_, stateName(state_),
                  stateName(to));
  }
  state_ = to;
}

void Connection::onStreamEvent(Stream& stream, StreamEvent event) {
  const bool client = &stream == client_.get();
  switch (event) {
    case StreamEvent::Connected:
      dispatch(client ? Event::ClientConnected : Event::UpstreamConnected);
      break;
    case StreamEvent::Readable:
      dispatch(client ? Event::ClientReadable : Event::UpstreamReadable);
      break;
    case StreamEvent::Drained:
      dispatch(client ? Event::ClientDrained : Event::UpstreamDrained);
      break;
    case StreamEvent::Finished:
      dispatch(client ? Event::ClientFinished : Event::UpstreamFinished);
      break;
    case StreamEvent::Closed:
      dispatch(client ? Event::ClientClosed : Event::UpstreamClosed);
      break;
  }
}

void Connection::dispatch(Event event) {
  ++dispatch_depth_;
  if (event == Event::Shutdown && state_ != State::Closed) {
    close("shutdown");
  }
  if (event == Event::AdminClose) {
    closeByAdmin();
  } else {
    handle(event);
  }
  if (--dispatch_depth_ == 0 && state_ == State::Closed) {
    host_.release(this);  // destroys this; nothing may follow
  }
}

// Routes an event to the handler of the current state. A handler may cause another event to be
// dispatched from inside (a stream reporting at once); dispatch() releases the connection only
// when the outermost call returns.
void Connection::handle(Event event) {
  switch (state_) {
    case State::Handshaking:
      whileHandshaking(event);
      break;
    case State::AwaitingConnect:
      whileAwaitingConnect(event);
      break;
    case State::Admitting:
      whileAdmitting(event);
      break;
    case State::Dialing:
      whileDialing(event);
      break;
    case State::Streaming:
      whileStreaming(event);
      break;
    case State::Refusing:
    case State::Flushing:
      whileFlushing(event);
      break;
    case State::Lingering:
      whileLingering(event);
      break;
    case State::Closed:
      break;
  }
}

void Connection::whileHandshaking(Event event) {
  if (event == Event::ClientConnected) {
    onHandshakeDone();
  } else if (event == Event::ClientClosed) {
    onHandshakeFailed();
  } else if (event == Event::DeadlineExpired) {
    host_.metrics().handshakeFailed("timeout");
    listener_metrics_.handshake(ops::HandshakeResult::Timeout);
    host_.metrics().limitedLog().warn(
        "handshake_timeout", "connection {}: TLS handshake from {} not done within {} ms", id_,
        record_.peer, host_.config().limits.handshake_timeout.count());
    close("handshake_timeout");
  }
}

void Connection::onHandshakeFailed() {
  auto failure = client_->handshakeFailure();
  host_.metrics().handshakeFailed(failure.reason);
  listener_metrics_.handshake(ops::handshakeResultOf(failure.reason));
  if (const auto looked = tls::verifyCacheResult(client_->ssl());
      looked != tls::VerifyCacheResult::None) {
    listener_metrics_.verifyCacheLookup(looked == tls::VerifyCacheResult::Hit);
  }
  record_.sni = client_->serverName();
  if (failure.reason == "eof") {
    // Port probes and health checks close before a handshake: not worth a warning.
    spdlog::debug("connection {}: client {} closed during the TLS handshake", id_, record_.peer);
  } else {
    host_.metrics().limitedLog().warn("handshake_failed",
                                      "connection {}: TLS handshake from {} failed: {}: {}", id_,
                                      record_.peer, failure.reason, failure.detail);
  }
  record_.close_reason = "handshake_failed";
  record_.detail = client_->closeDetail();
  // The alert is on its way: shut our side and let the client read it before we close.
  transition(State::Lingering);
  armDeadline(kLingerTimeout);
  client_->finish();
}

void Connection::whileAwaitingConnect(Event event) {
  if (event == Event::ClientReadable) {
    readFirstPacket();
  } else if (event == Event::ClientClosed) {
    if (client_->closeKind() == CloseKind::Clean) {
      client_finished_ = true;  // a CONNECT sent just before the close still counts
      readFirstPacket();
    }
    if (state_ == State::AwaitingConnect) {
      close("client_closed_before_connect", client_->closeDetail());
    }
  } else if (event == Event::DeadlineExpired) {
    host_.metrics().connectRefused("connect_timeout");
    close("connect_timeout");
  }
}

void Connection::whileAdmitting(Event event) {
  if (event == Event::ClientReadable) {
    holdClientInput();
  } else if (event == Event::Admitted) {
    onVerdict();
  } else if (event == Event::ClientClosed && client_->closeKind() == CloseKind::Clean) {
    client_finished_ = true;  // what it sent still goes to the broker if admitted
  } else if (event == Event::ClientClosed) {
    pending_.reset();
    close("client_closed_before_connack", client_->closeDetail());
  } else if (event == Event::DeadlineExpired) {
    pending_.reset();
    refuse(mqtt::Refusal::ServerUnavailable, level_, "admission_timeout",
           "no admission decision in time");
  }
}

void Connection::whileDialing(Event event) {
  if (event == Event::ClientReadable) {
    holdClientInput();
  } else if (event == Event::UpstreamConnected) {
    onUpstreamConnected();
  } else if (event == Event::UpstreamClosed || event == Event::DeadlineExpired) {
    // The same connect_timeout bounds this deadline and the stream's last attempt: whichever
    // ends first, a timeout counts as one.
    const bool timed_out = event == Event::DeadlineExpired || upstream_->timedOut();
    std::string detail = event == Event::DeadlineExpired ? "broker connect timed out"
                         : timed_out ? "broker connect timed out: " + upstream_->closeDetail()
                                     : upstream_->closeDetail();
    host_.metrics().upstreamFailed(timed_out ? "timeout" : "error");
    host_.metrics().limitedLog().warn("upstream_failed", "connection {}: broker unavailable: {}",
                                      id_, detail);
    upstream_.reset();
    refuse(mqtt::Refusal::ServerUnavailable, level_, "broker_unavailable", detail);
  } else if (event == Event::ClientClosed && client_->closeKind() == CloseKind::Clean) {
    client_finished_ = true;  // what it sent still goes to the broker once connected
  } else if (event == Event::ClientClosed) {
    close("client_closed_before_connack", client_->closeDetail());
  }
}

void Connection::whileStreaming(Event event) {
  switch (event) {
    case Event::ClientReadable:
      forwardFromClient();
      break;
    case Event::UpstreamReadable:
      forwardFromBroker();
      break;
    case Event::ClientDrained:
      resumeAfterDrain(*upstream_, *client_);
      break;
    case Event::UpstreamDrained:
      resumeAfterDrain(*client_, *upstream_);
      break;
    case Event::ClientClosed:
      beginFlush(true, "client_closed");
      break;
    case Event::UpstreamClosed:
      beginFlush(false, "broker_closed");
      break;
    default:
      break;
  }
}

// Refusing and Flushing: the survivor's output drains; its stream then reports Finished. The
// other side, if it is still there (a refused packet), may finish and close meanwhile.
void Connection::whileFlushing(Event event) {
  Stream* side = survivor();
  const bool client_event = event == Event::ClientFinished || event == Event::ClientClosed;
  const bool upstream_event = event == Event::UpstreamFinished || event == Event::UpstreamClosed;
  if (client_event && side == client_.get() && upstream_ && upstream_->finishing() &&
      !upstream_->finished() && upstream_->closeKind() == CloseKind::None) {
    // A refused packet: the client is told and done; what went before it still reaches the
    // broker, which is now the side being flushed.
    client_.reset();
    flush_mark_ = upstream_->outputSize();
    armDeadline(kFlushIdleTimeout);
    return;
  }
  if ((client_event && side != client_.get()) || (upstream_event && side != upstream_.get())) {
    if (event == Event::UpstreamClosed) {
      upstream_.reset();
    }
    return;
  }
  if (event == Event::ClientFinished || event == Event::UpstreamFinished) {
    startLinger();
  } else if (event == Event::ClientClosed || event == Event::UpstreamClosed) {
    close(record_.close_reason, record_.detail);
  } else if (event == Event::DeadlineExpired) {
    onFlushDeadline();
  }
}

void Connection::whileLingering(Event event) {
  if (event == Event::ClientClosed || event == Event::UpstreamClosed ||
      event == Event::DeadlineExpired) {
    close(record_.close_reason, record_.detail);
  }
}

void Connection::armDeadline(std::chrono::milliseconds after) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(after.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((after.count() % 1000) * 1000);
  evtimer_add(deadline_.get(), &tv);
}

}  // namespace mqtls::net

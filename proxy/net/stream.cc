#include "net/stream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mqtls::net {

std::string formatAddress(const sockaddr* addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr == nullptr) {
    return "?";
  }
  if (addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "unix";
}

evbuffer* Stream::input() const {
  return bev_ ? bufferevent_get_input(bev_.get()) : nullptr;
}

evbuffer* Stream::output() const {
  return bev_ ? bufferevent_get_output(bev_.get()) : nullptr;
}

std::size_t Stream::outputSize() const {
  return bev_ ? evbuffer_get_length(bufferevent_get_output(bev_.get())) : 0;
}

int Stream::fd() const {
  return bev_ ? static_cast<int>(bufferevent_getfd(bev_.get())) : -1;
}

void Stream::adopt(bufferevent* bev) {
  bev_.reset(bev);
  if (bev_) {
    bufferevent_setcb(bev_.get(), &Stream::readCallback, &Stream::writeCallback,
                      &Stream::eventCallback, this);
  }
}

void Stream::pauseReading() {
  if (!paused_ && bev_) {
    paused_ = true;
    bufferevent_disable(bev_.get(), EV_READ);
  }
}

void Stream::resumeReading() {
  if (paused_ && bev_) {
    paused_ = false;
    bufferevent_enable(bev_.get(), EV_READ);
  }
}

void Stream::setDrainWatermark(std::size_t bytes) {
  if (bev_) {
    bufferevent_setwatermark(bev_.get(), EV_WRITE, bytes, 0);
  }
}

void Stream::markClosed(CloseKind kind, std::string detail) {
  if (close_kind_ == CloseKind::None || kind == CloseKind::Error) {
    close_kind_ = kind;
    close_detail_ = std::move(detail);
  }
}

void Stream::finish() {
  if (finishing_ || !bev_) {
    return;
  }
  finishing_ = true;
  // Input from now on is read and dropped, so the peer's close can always be seen.
  evbuffer_drain(input(), evbuffer_get_length(input()));
  paused_ = false;
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  if (outputSize() == 0) {
    finish_later_.reset(
        event_new(bufferevent_get_base(bev_.get()), -1, 0, &Stream::finishLaterCallback, this));
    if (finish_later_) {
      event_active(finish_later_.get(), 0, 0);
    }
  }
}

void Stream::finishLaterCallback(evutil_socket_t, short, void* self) {
  static_cast<Stream*>(self)->completeFinish();
}

// Output is flushed: write the trailer (retrying on writability), shut the write side, report.
void Stream::completeFinish() {
  if (finished_) {
    return;
  }
  if (!writeTrailer()) {
    if (!trailer_retry_) {
      trailer_retry_.reset(event_new(bufferevent_get_base(bev_.get()), fd(), EV_WRITE,
                                     &Stream::trailerCallback, this));
    }
    if (trailer_retry_) {
      event_add(trailer_retry_.get(), nullptr);
      return;
    }
  }
  finished_ = true;
  bufferevent_disable(bev_.get(), EV_WRITE);
  shutdownWrite();
  notify(StreamEvent::Finished);
}

void Stream::shutdownWrite() {
  if (fd() >= 0) {
    ::shutdown(fd(), SHUT_WR);
  }
}

void Stream::trailerCallback(evutil_socket_t, short, void* self) {
  static_cast<Stream*>(self)->completeFinish();
}

void Stream::onError(short what) {
  if ((what & BEV_EVENT_ERROR) != 0) {
    int err = EVUTIL_SOCKET_ERROR();
    markClosed(CloseKind::Error, err != 0 ? evutil_socket_error_to_string(err) : "error");
  } else if ((what & BEV_EVENT_TIMEOUT) != 0) {
    markClosed(CloseKind::Error, "timeout");
  } else {
    markClosed(CloseKind::Clean, {});
  }
  notify(StreamEvent::Closed);
}

void Stream::readCallback(bufferevent* bev, void* self) {
  auto* stream = static_cast<Stream*>(self);
  if (stream->finishing_) {
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  stream->notify(StreamEvent::Readable);
}

void Stream::writeCallback(bufferevent*, void* self) {
  auto* stream = static_cast<Stream*>(self);
  if (stream->finishing_) {
    if (stream->outputSize() == 0) {
      stream->completeFinish();
    }
    return;
  }
  stream->notify(StreamEvent::Drained);
}

void Stream::eventCallback(bufferevent*, short what, void* self) {
  auto* stream = static_cast<Stream*>(self);
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    stream->onConnected();
  } else if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) != 0) {
    stream->onError(what);
  }
}

}  // namespace mqtls::net

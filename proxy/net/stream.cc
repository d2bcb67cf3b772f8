#include "net/stream.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mqtls::net {

Stream::Stream(StreamObserver& observer, event_base* base)
    : observer_(observer),
      base_(base),
      input_(evbuffer_new()),
      output_(evbuffer_new()),
      soon_event_(event_new(base, -1, 0, &Stream::soonCallback, this)) {
  if (output_) {
    evbuffer_add_cb(output_.get(), &Stream::outputChanged, this);
  }
}

Stream::~Stream() {
  if (alive_ != nullptr) {
    *alive_ = false;
  }
  read_event_.reset();
  write_event_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::size_t Stream::outputSize() const {
  return output_ ? evbuffer_get_length(output_.get()) : 0;
}

bool Stream::attach(int fd, Phase phase) {
  fd_ = fd;
  phase_ = phase;
  read_event_.reset(event_new(base_, fd, EV_READ | EV_PERSIST, &Stream::readyCallback, this));
  write_event_.reset(event_new(base_, fd, EV_WRITE | EV_PERSIST, &Stream::readyCallback, this));
  if (!read_event_ || !write_event_ || !input_ || !output_ || !soon_event_) {
    detach();
    failLater("cannot allocate connection state");
    return false;
  }
  syncInterest();
  return true;
}

void Stream::detach() {
  read_event_.reset();
  write_event_.reset();
  read_armed_ = write_armed_ = false;
  write_blocked_ = read_wants_write_ = write_wants_read_ = handshake_wants_write_ = false;
  if (fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = -1;
  phase_ = Phase::Detached;
}

void Stream::markClosed(CloseKind kind, std::string detail) {
  if (close_kind_ == CloseKind::None || kind == CloseKind::Error) {
    close_kind_ = kind;
    close_detail_ = std::move(detail);
  }
}

void Stream::failLater(std::string detail) {
  markClosed(CloseKind::Error, std::move(detail));
  read_done_ = write_done_ = true;
  syncInterest();
  schedule(kSoonClosed);
}

bool Stream::emit(StreamEvent event) {
  bool alive = true;
  bool* outer = alive_;
  alive_ = &alive;
  observer_.onStreamEvent(*this, event);
  if (!alive) {
    if (outer != nullptr) {
      *outer = false;
    }
    return false;
  }
  alive_ = outer;
  return true;
}

void Stream::schedule(std::uint8_t work) {
  soon_ |= work;
  if (soon_event_) {
    event_active(soon_event_.get(), 0, 0);  // no-op while already active
  }
}

// Adds or removes the socket's read and write interest to match what the stream waits for, so
// epoll_ctl runs only when that changes.
void Stream::syncInterest() {
  const bool open = phase_ == Phase::Open;
  // While the transport waits for writability (a handshake flight or a record that did not fit),
  // reading could only spin: it stays off until the write side moved.
  const bool blocked_on_write = handshake_wants_write_ || read_wants_write_;
  const bool want_read =
      fd_ >= 0 && !read_done_ && !blocked_on_write &&
      (phase_ == Phase::Handshaking || (open && (!paused_ || finishing_ || write_wants_read_)));
  const bool want_write =
      fd_ >= 0 && !write_done_ &&
      (phase_ == Phase::Connecting || (phase_ == Phase::Handshaking && handshake_wants_write_) ||
       (open && (write_blocked_ || trailer_pending_ || read_wants_write_)));
  if (want_read != read_armed_ && read_event_) {
    read_armed_ = want_read;
    want_read ? event_add(read_event_.get(), nullptr) : event_del(read_event_.get());
  }
  if (want_write != write_armed_ && write_event_) {
    write_armed_ = want_write;
    want_write ? event_add(write_event_.get(), nullptr) : event_del(write_event_.get());
  }
}

// Reads what the transport holds on the next loop turn, after the poller and the timers ran (a
// zero timeout), so that a fast sender cannot keep this worker from its other connections.
void Stream::readHeldLater() {
  if (!held_read_) {
    held_read_.reset(evtimer_new(base_, &Stream::heldReadCallback, this));
  }
  if (held_read_) {
    const timeval now{0, 0};
    evtimer_add(held_read_.get(), &now);
  }
}

void Stream::heldReadCallback(evutil_socket_t, short, void* self) {
  auto* stream = static_cast<Stream*>(self);
  if (stream->phase_ == Phase::Open) {
    stream->readInput();
  }
}

void Stream::pauseReading() {
  if (!paused_) {
    paused_ = true;
    syncInterest();
  }
}

void Stream::resumeReading() {
  if (paused_) {
    paused_ = false;
    syncInterest();
    if (phase_ == Phase::Open && holdsInput()) {
      schedule(kSoonRead);  // no socket readiness will announce these
    }
  }
}

void Stream::watchDrain(std::size_t bytes) {
  drain_mark_ = bytes;
  drain_watched_ = true;
}

void Stream::finish() {
  if (finishing_ || !output_) {
    return;
  }
  finishing_ = true;
  // Input from now on is read and dropped, so the peer's close can always be seen.
  evbuffer_drain(input_.get(), evbuffer_get_length(input_.get()));
  paused_ = false;
  drain_watched_ = false;
  if (read_done_ && !write_done_ && closed_reported_ && readableAfterClose()) {
    read_done_ = false;  // keep reading raw bytes until the peer closes; Closed comes again
    closed_reported_ = false;
  }
  syncInterest();
  schedule(kSoonFlush | (phase_ == Phase::Open && holdsInput() ? kSoonRead : 0));
}

// Reports Closed once (again only after finish() re-opened reading); reading stops.
bool Stream::reportClosed() {
  read_done_ = true;
  if (close_kind_ == CloseKind::None) {
    markClosed(CloseKind::Clean, {});
  }
  syncInterest();
  if (closed_reported_) {
    return true;
  }
  closed_reported_ = true;
  return emit(StreamEvent::Closed);
}

void Stream::readyCallback(evutil_socket_t, short what, void* self) {
  auto* stream = static_cast<Stream*>(self);
  if ((what & EV_READ) != 0) {
    stream->onReadable();
  } else if ((what & EV_WRITE) != 0) {
    stream->onWritable();
  }
}

void Stream::soonCallback(evutil_socket_t, short, void* self) {
  auto* stream = static_cast<Stream*>(self);
  const std::uint8_t work = stream->soon_;
  stream->soon_ = 0;
  if ((work & kSoonClosed) != 0) {
    stream->reportClosed();
    return;
  }
  if ((work & kSoonRead) != 0 && stream->phase_ == Phase::Open && !stream->readInput()) {
    return;
  }
  if ((work & kSoonFlush) != 0) {
    stream->flushOutput();
  }
}

// Appending to output() schedules a write on this loop turn, unless the socket is known full
// (then its writability event does it).
void Stream::outputChanged(evbuffer*, const evbuffer_cb_info* info, void* self) {
  auto* stream = static_cast<Stream*>(self);
  if (info->n_added > 0 && stream->phase_ == Phase::Open && !stream->write_blocked_) {
    stream->schedule(kSoonFlush);
  }
}

bool Stream::onReadable() {
  if (phase_ == Phase::Handshaking) {
    return stepHandshake();
  }
  if (phase_ != Phase::Open) {
    return true;
  }
  if (write_wants_read_) {
    write_wants_read_ = false;
    if (!flushOutput()) {
      return false;
    }
  }
  return readInput();
}

bool Stream::onWritable() {
  switch (phase_) {
    case Phase::Connecting: {
      int error = 0;
      socklen_t len = sizeof error;
      if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
        error = errno;
      }
      return onConnectResult(error);
    }
    case Phase::Handshaking:
      return stepHandshake();
    case Phase::Open:
      break;
    case Phase::Detached:
      return true;
  }
  if (read_wants_write_) {
    read_wants_write_ = false;
    if (!readInput()) {
      return false;
    }
  }
  write_blocked_ = false;
  return flushOutput();
}

bool Stream::onConnectResult(int error) {
  if (error != 0) {
    markClosed(CloseKind::Error, std::strerror(error));
    write_done_ = true;
    return reportClosed();
  }
  return becomeOpen();
}

// The transport is ready: bytes flow. What was queued or read ahead (TLS records that came with
// the handshake) is handled on this loop turn; the socket's bytes are announced by readiness.
bool Stream::becomeOpen() {
  phase_ = Phase::Open;
  syncInterest();
  schedule(kSoonFlush | (holdsInput() ? kSoonRead : 0));
  return onConnected();
}

bool Stream::stepHandshake() {
  const IoResult result = handshake();
  handshake_wants_write_ = false;
  switch (result.status) {
    case Io::Progress:
      return becomeOpen();
    case Io::WantRead:
      break;
    case Io::WantWrite:
      handshake_wants_write_ = true;
      break;
    case Io::Eof:
    case Io::Error:
      // The handshake is over: what follows (an alert already written, finish(), raw reads
      // until the peer closes) runs as on an open stream.
      phase_ = Phase::Open;
      write_done_ = result.status == Io::Error && !readableAfterClose();
      return reportClosed();
  }
  syncInterest();
  return true;
}

// Reads what the socket holds, up to kReadBudget, reporting Readable after each piece (so a
// pause takes effect at once); while finishing, reads and drops. EOF or an error reports Closed
// after the bytes before it were reported.
bool Stream::readInput() {
  char scratch[kReadChunk];
  std::size_t budget = kReadBudget;
  while (!read_done_ && (finishing_ || !paused_)) {
    const IoResult result = receive(scratch, std::min(sizeof scratch, budget));
    if (result.status == Io::Progress) {
      if (!finishing_) {
        evbuffer_add(input_.get(), scratch, result.bytes);
        if (!emit(StreamEvent::Readable)) {
          return false;
        }
      }
      budget -= std::min(budget, result.bytes);
      if (budget == 0 && holdsInput()) {
        readHeldLater();  // no readiness will announce what the transport holds
      }
      if (budget == 0 || !result.more) {
        break;
      }
      continue;
    }
    if (result.status == Io::WantWrite) {
      read_wants_write_ = true;
    } else if (result.status != Io::WantRead) {
      if (result.status == Io::Error) {
        write_done_ = !readableAfterClose();
      }
      return reportClosed();
    }
    break;
  }
  syncInterest();
  return true;
}

// Writes output() until it is empty or the socket is full; reports Drained when a watched
// level is reached and completes a finish() once everything is out.
bool Stream::flushOutput() {
  if (phase_ != Phase::Open) {
    return true;
  }
  evbuffer* out = output_.get();
  if (write_done_) {
    evbuffer_drain(out, evbuffer_get_length(out));  // nobody left to write to
  }
  bool failed = false;
  while (!write_done_ && evbuffer_get_length(out) > 0) {
    const IoResult result = send(out);
    if (result.status == Io::Progress) {
      write_blocked_ = false;
      continue;
    }
    if (result.status == Io::WantWrite) {
      write_blocked_ = true;
    } else if (result.status == Io::WantRead) {
      write_wants_read_ = true;
    } else {
      failed = true;
    }
    break;
  }
  if (!failed && !write_done_ && !write_blocked_) {
    const IoResult held = flushTransport();
    write_blocked_ = held.status == Io::WantWrite;
    failed = held.status == Io::Error;
  }
  if (failed) {
    write_done_ = true;
    if (close_kind_ == CloseKind::None) {
      markClosed(CloseKind::Error, "write failed");
    }
    evbuffer_drain(out, evbuffer_get_length(out));
    // What the peer sent before it went away (a broker's refusing CONNACK) still counts.
    if (!readInput() || !reportClosed()) {
      return false;
    }
  }
  syncInterest();
  if (drain_watched_ && evbuffer_get_length(out) <= drain_mark_) {
    drain_watched_ = false;
    if (!emit(StreamEvent::Drained)) {
      return false;
    }
  }
  if (finishing_ && !finished_ && evbuffer_get_length(out) == 0) {
    return completeFinish();
  }
  return true;
}

// Output is flushed: write the trailer (retried on writability), shut the write side, report.
bool Stream::completeFinish() {
  if (!write_done_) {
    trailer_pending_ = false;
    if (!writeTrailer()) {
      trailer_pending_ = true;
      syncInterest();
      return true;
    }
    shutdownWrite();
  }
  finished_ = true;
  syncInterest();
  return emit(StreamEvent::Finished);
}

void Stream::shutdownWrite() {
  if (fd_ >= 0) {
    ::shutdown(fd_, SHUT_WR);
  }
}

Stream::IoResult Stream::receive(void* into, std::size_t capacity) {
  for (;;) {
    const ssize_t n = ::recv(fd_, into, capacity, 0);
    if (n > 0) {
      const auto bytes = static_cast<std::size_t>(n);
      return {Io::Progress, bytes, bytes == capacity};
    }
    if (n == 0) {
      return {Io::Eof};
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return {Io::WantRead};
    }
    markClosed(CloseKind::Error, std::strerror(errno));
    return {Io::Error};
  }
}

Stream::IoResult Stream::send(evbuffer* from) {
  const int n = finishing_ ? sendBeforeShutdown(from) : evbuffer_write_atmost(from, fd_, -1);
  if (n > 0) {
    return {Io::Progress, static_cast<std::size_t>(n)};
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    return {Io::WantWrite};
  }
  markClosed(CloseKind::Error, n < 0 ? std::strerror(errno) : "write failed");
  return {Io::Error};
}

// The write side is shut once output() is out: with MSG_MORE the last bytes wait for that FIN
// (shutdown, or a close, pushes them) and leave in its segment, sparing the peer a wakeup. As
// evbuffer_write_atmost: no copy; -1 with errno set when the socket refuses.
int Stream::sendBeforeShutdown(evbuffer* from) {
  constexpr int kPieces = 16;
  evbuffer_iovec pieces[kPieces];
  const int found = std::min(evbuffer_peek(from, -1, nullptr, pieces, kPieces), kPieces);
  iovec vector[kPieces];
  for (int i = 0; i < found; ++i) {
    vector[i] = {pieces[i].iov_base, pieces[i].iov_len};
  }
  msghdr message{};
  message.msg_iov = vector;
  message.msg_iovlen = static_cast<std::size_t>(std::max(found, 0));
  const ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_MORE);
  if (n > 0) {
    evbuffer_drain(from, static_cast<std::size_t>(n));
  }
  return static_cast<int>(n);
}

}  // namespace mqtls::net

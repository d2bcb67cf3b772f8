#include "net/gathering_socket.h"

#include <sys/socket.h>

#include <cerrno>
#include <new>

namespace mqtls::net {
namespace {

// One method table for every connection, made on first use (thread-safe static).
BIO_METHOD* gatheringMethod(int (*write)(BIO*, const char*, int), int (*read)(BIO*, char*, int),
                            long (*ctrl)(BIO*, int, long, void*)) {
  static BIO_METHOD* method = [&] {
    BIO_METHOD* made =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mqtls gathering socket");
    if (made != nullptr &&
        (BIO_meth_set_write(made, write) != 1 || BIO_meth_set_read(made, read) != 1 ||
         BIO_meth_set_ctrl(made, ctrl) != 1)) {
      BIO_meth_free(made);
      made = nullptr;
    }
    return made;
  }();
  return method;
}

}  // namespace

BIO* GatheringSocket::newBio() {
  BIO_METHOD* method = gatheringMethod(&bioWrite, &bioRead, &bioCtrl);
  BIO* bio = method != nullptr ? BIO_new(method) : nullptr;
  if (bio != nullptr) {
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
  }
  return bio;
}

GatheringSocket::Flush GatheringSocket::flush(bool last) {
  ticket_bytes_ = 0;  // whatever is held leaves now, tickets included
  const int flags = MSG_NOSIGNAL | (last ? MSG_MORE : 0);
  while (sent_ < held_.size()) {
    const ssize_t n = ::send(fd_, held_.data() + sent_, held_.size() - sent_, flags);
    if (n > 0) {
      sent_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Flush::Blocked;
    }
    const int error = errno;
    std::vector<unsigned char>().swap(held_);
    sent_ = 0;
    errno = error;
    return Flush::Failed;
  }
  std::vector<unsigned char>().swap(held_);  // freed, not kept: idle connections hold nothing
  sent_ = 0;
  return Flush::Done;
}

int GatheringSocket::bioWrite(BIO* bio, const char* data, int size) {
  auto* self = static_cast<GatheringSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (size <= 0) {
    return 0;
  }
  if (self->held() >= kGatherBytes) {
    switch (self->flush()) {
      case Flush::Done:
        break;
      case Flush::Blocked:
        BIO_set_retry_write(bio);
        return -1;
      case Flush::Failed:
        return -1;
    }
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);  // a memmove, not a loop
  try {
    if (self->sent_ > 0) {
      // A flush stopped part way (the socket was full): drop what it sent, so that a socket that
      // stays slow cannot make the buffer grow.
      self->held_.erase(self->held_.begin(),
                        self->held_.begin() + static_cast<std::ptrdiff_t>(self->sent_));
      self->sent_ = 0;
    }
    if (self->held_.empty() && static_cast<std::size_t>(size) >= kLargeRecord) {
      self->held_.reserve(kGatherBytes + kFullRecord);  // a full gather without regrowing
    }
    self->held_.insert(self->held_.end(), bytes, bytes + size);
  } catch (const std::bad_alloc&) {
    errno = ENOMEM;
    return -1;
  }
  return size;
}

int GatheringSocket::bioRead(BIO* bio, char* into, int size) {
  auto* self = static_cast<GatheringSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (size <= 0) {
    return 0;
  }
  for (;;) {
    const ssize_t n = ::recv(self->fd_, into, static_cast<std::size_t>(size), 0);
    if (n > 0) {
      return static_cast<int>(n);
    }
    if (n == 0) {
      self->eof_ = true;  // BIO_eof(): OpenSSL tells a FIN from a failed read by it
      return 0;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(bio);
    }
    return -1;
  }
}

long GatheringSocket::bioCtrl(BIO* bio, int command, long, void* pointer) {
  auto* self = static_cast<GatheringSocket*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_FLUSH:
      BIO_clear_retry_flags(bio);
      if (self->defer_flushes_) {
        return 1;  // the caller flushes once OpenSSL is done
      }
      if (self->ticket_session_ != nullptr &&
          SSL_get_state(self->ticket_session_) == TLS_ST_SW_SESSION_TICKET) {
        // A TLS 1.3 ticket (or an alert raised while making it): it leaves with the next flush,
        // at the latest with close_notify.
        self->ticket_bytes_ = self->held();
        return 1;
      }
      switch (self->flush()) {
        case Flush::Done:
          return 1;
        case Flush::Blocked:
          BIO_set_retry_write(bio);
          return -1;
        case Flush::Failed:
          return -1;
      }
      return -1;
    case BIO_CTRL_WPENDING:
      return static_cast<long>(self->held());
    case BIO_CTRL_EOF:
      return self->eof_ ? 1 : 0;
    case BIO_C_GET_FD:
      if (pointer != nullptr) {
        *static_cast<int*>(pointer) = self->fd_;
      }
      return self->fd_;
    case BIO_CTRL_DUP:
      return 1;
    default:
      return 0;  // as the socket BIO: nothing else applies (no kernel TLS, no push/pop state)
  }
}

}  // namespace mqtls::net

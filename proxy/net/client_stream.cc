#include "net/client_stream.h"

#include <event2/buffer.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mqtls::net {

ClientTlsStream::ClientTlsStream(StreamObserver& observer, event_base* base,
                                 const tls::TlsContext& context, int fd, const sockaddr* peer)
    : Stream(observer, base), socket_(fd), ssl_(context.newSsl()), pending_fd_(fd) {
  setPeerAddress(formatAddress(peer));
  BIO* bio = ssl_ ? socket_.newBio() : nullptr;
  if (bio != nullptr) {
    SSL_set_bio(ssl_.get(), bio, bio);  // one reference, owned by the SSL
    SSL_set_accept_state(ssl_.get());
    SSL_set_read_ahead(ssl_.get(), 1);
    // Room for four full records per recv (the buffer is released while idle).
    SSL_set_default_read_buffer_len(ssl_.get(), kReadAheadBytes);
    // A write that must be retried may find its bytes moved by later appends to output().
    SSL_set_mode(ssl_.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    socket_.holdTicketsOf(ssl_.get());  // the TLS 1.3 ticket leaves with the CONNACK
  } else {
    ssl_.reset();
  }
}

ClientTlsStream::~ClientTlsStream() {
  if (pending_fd_ >= 0) {
    ::close(pending_fd_);
  }
  SSL* session = ssl_.get();
  if (session == nullptr || forget_ || failed_ || !handshake_done_) {
    return;  // freed without SSL_shutdown: OpenSSL drops the session from its cache
  }
  // A clean session: close_notify (if not sent yet) and mark it shut down, so OpenSSL keeps it
  // resumable when the SSL is freed (before the socket is closed). The socket is closed right
  // after: the alert waits for that close's FIN to leave in one segment with it. (Should the
  // client have sent bytes nobody read, the close is a reset, and the alert is dropped with it;
  // it would have been followed by that reset anyway.)
  if ((SSL_get_shutdown(session) & SSL_SENT_SHUTDOWN) == 0) {
    socket_.deferFlushes(true);
    SSL_shutdown(session);
    socket_.deferFlushes(false);
    ERR_clear_error();
    socket_.flush(/*last=*/true);  // a full socket drops it, as it would the alert
  }
  SSL_set_shutdown(session, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

bool ClientTlsStream::start() {
  const int fd = pending_fd_;
  pending_fd_ = -1;
  if (!ssl_) {
    ::close(fd);
    return false;
  }
  // No read limit on the TLS side beyond the stream's budget: callers bound input themselves.
  return attach(fd, Phase::Handshaking);
}

tls::SessionFacts ClientTlsStream::sessionFacts() const {
  return tls::describeSession(ssl());
}

X509* ClientTlsStream::peerCertificate() const {
  SSL* session = ssl();
  return session != nullptr ? SSL_get0_peer_certificate(session) : nullptr;
}

std::shared_ptr<const tls::PeerIdentity> ClientTlsStream::keptPeerIdentity() const {
  SSL* session = ssl();
  return session != nullptr ? tls::keptPeerIdentity(SSL_get_session(session)) : nullptr;
}

std::string ClientTlsStream::serverName() const {
  SSL* session = ssl();
  const char* name =
      session != nullptr ? SSL_get_servername(session, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name != nullptr ? name : "";
}

bool ClientTlsStream::certificateCurrent() const {
  return tls::peerCertificateCurrent(ssl());
}

tls::HandshakeFailure ClientTlsStream::handshakeFailure() const {
  return tls::classifyHandshakeFailure(ssl(), errors_);
}

void ClientTlsStream::forgetSession() {
  forget_ = true;
  if (SSL* session = ssl()) {
    tls::forgetSession(session);
  }
}

bool ClientTlsStream::onConnected() {
  handshake_done_ = true;
  return emit(StreamEvent::Connected);
}

Stream::IoResult ClientTlsStream::handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    return {Io::Progress};
  }
  const int error = SSL_get_error(ssl_.get(), rc);
  if (error == SSL_ERROR_WANT_READ) {
    return {Io::WantRead};
  }
  if (error == SSL_ERROR_WANT_WRITE) {
    return {Io::WantWrite};
  }
  if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
    failed_ = true;  // EOF or a reset in the middle of a handshake
    errors_.push_back(static_cast<unsigned long>(error));
    markClosed(CloseKind::Error, "eof: client closed the connection during the handshake");
    return {Io::Eof};
  }
  return fail(error);
}

Stream::IoResult ClientTlsStream::receive(void* into, std::size_t capacity) {
  if (failed_) {
    // After a failed session only finish() reads on: raw bytes, dropped until the peer closes.
    return finishing() ? Stream::receive(into, capacity) : IoResult{Io::Error};
  }
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_read(ssl_.get(), into, static_cast<int>(capacity));
  if (socket_.held() > 0 && !socket_.onlyTicketsHeld()) {
    flushSoon();  // reading made OpenSSL write (a post-handshake message): send it this turn
  }
  if (rc > 0) {
    // Records already read ahead are worth another call; the socket is left to readiness.
    return {Io::Progress, static_cast<std::size_t>(rc), SSL_has_pending(ssl_.get()) == 1};
  }
  const int error = SSL_get_error(ssl_.get(), rc);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return {Io::WantRead};
    case SSL_ERROR_WANT_WRITE:
      return {Io::WantWrite};
    case SSL_ERROR_ZERO_RETURN:
      return {Io::Eof};  // close_notify, or a FIN (unexpected EOF is accepted as a close)
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0 && errno == 0) {
        return {Io::Eof};
      }
      if (ERR_peek_error() == 0 && errno == ECONNRESET) {
        // A client that closes without reading our last records (its session tickets) resets
        // the connection: what it sent before was authenticated and still counts.
        markClosed(CloseKind::Clean, "connection reset by the client");
        return {Io::Eof};
      }
      [[fallthrough]];
    default:
      return fail(error);
  }
}

// One record per call: SSL_write of up to 16 KiB from the front of `from`, drained once written.
// A write that wants the socket is retried later with the same length, as OpenSSL requires.
Stream::IoResult ClientTlsStream::send(evbuffer* from) {
  if (failed_) {
    markClosed(CloseKind::Error, closeDetail().empty() ? "tls session failed" : closeDetail());
    return {Io::Error};
  }
  const std::size_t size =
      retry_write_ != 0 ? retry_write_ : std::min(evbuffer_get_length(from), kRecordBytes);
  unsigned char* data = evbuffer_pullup(from, static_cast<ev_ssize_t>(size));
  if (data == nullptr) {
    markClosed(CloseKind::Error, "cannot allocate write buffer");
    return {Io::Error};
  }
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_write(ssl_.get(), data, static_cast<int>(size));
  if (rc > 0) {
    retry_write_ = 0;
    evbuffer_drain(from, static_cast<std::size_t>(rc));
    return {Io::Progress, static_cast<std::size_t>(rc)};
  }
  const int error = SSL_get_error(ssl_.get(), rc);
  if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
    retry_write_ = size;
    return {error == SSL_ERROR_WANT_WRITE ? Io::WantWrite : Io::WantRead};
  }
  return fail(error);
}

bool ClientTlsStream::holdsInput() const {
  return ssl_ && !failed_ && SSL_has_pending(ssl_.get()) == 1;
}

// Records why the session failed: during the handshake as handshakeFailure() classifies it,
// afterwards OpenSSL's first queued reason or the socket error.
Stream::IoResult ClientTlsStream::fail(int error) {
  const int socket_error = errno;
  failed_ = true;
  errors_.push_back(static_cast<unsigned long>(error));
  unsigned long first = 0;
  while (unsigned long code = ERR_get_error()) {
    errors_.push_back(code);
    first = first != 0 ? first : code;
  }
  std::string detail;
  if (!handshake_done_) {
    const auto failure = handshakeFailure();
    detail = failure.reason + ": " + failure.detail;
  } else if (first != 0) {
    const char* text = ERR_reason_error_string(first);
    detail = std::string("tls error: ") + (text != nullptr ? text : "unknown");
  } else {
    detail = socket_error != 0 ? std::strerror(socket_error) : "tls error";
  }
  markClosed(CloseKind::Error, std::move(detail));
  return {Io::Error};
}

// close_notify after the last byte, on a session that finished its handshake cleanly, then
// everything held (the alert, or the alert of a failed handshake) sent before the write side is
// shut. When the socket buffer is full OpenSSL keeps the alert pending (calling SSL_shutdown
// again writes it) or the socket holds it back (flushed again on writability). A socket that
// failed is given up: nothing more can be sent.
bool ClientTlsStream::writeTrailer() {
  SSL* session = ssl_.get();
  if (session != nullptr && !failed_ && handshake_done_ && !close_notify_queued_) {
    socket_.deferFlushes(true);  // the alert leaves below, with the FIN
    const int rc = SSL_shutdown(session);
    socket_.deferFlushes(false);
    const bool retry = rc < 0 && SSL_get_error(session, rc) == SSL_ERROR_WANT_WRITE;
    ERR_clear_error();
    if (retry) {
      return false;
    }
    close_notify_queued_ = true;
  }
  if (socket_.held() == 0) {
    return true;
  }
  switch (socket_.flush(/*last=*/true)) {  // the write shutdown follows: its FIN joins them
    case GatheringSocket::Flush::Done:
      return true;
    case GatheringSocket::Flush::Blocked:
      return false;
    case GatheringSocket::Flush::Failed:
      break;
  }
  sendFailed();  // the last records were lost: not a clean finish
  return true;
}

void ClientTlsStream::sendFailed() {
  const int socket_error = errno;
  failed_ = true;
  errors_.push_back(static_cast<unsigned long>(SSL_ERROR_SYSCALL));
  if (closeKind() == CloseKind::None) {  // a close already seen (a reset) says more
    markClosed(CloseKind::Error, std::strerror(socket_error));
  }
}

// The records gathered by the SSL_write calls of one flush leave in one send.
Stream::IoResult ClientTlsStream::flushTransport() {
  if (socket_.held() == 0 || socket_.onlyTicketsHeld()) {  // tickets wait for the next records
    return {Io::Progress};
  }
  switch (socket_.flush()) {
    case GatheringSocket::Flush::Done:
      return {Io::Progress};
    case GatheringSocket::Flush::Blocked:
      return {Io::WantWrite};
    case GatheringSocket::Flush::Failed:
      break;
  }
  sendFailed();
  return {Io::Error};
}

}  // namespace mqtls::net

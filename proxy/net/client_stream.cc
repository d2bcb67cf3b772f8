#include "net/client_stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace mqtls::net {

ClientTlsStream::ClientTlsStream(StreamObserver& observer, event_base* base,
                                 const tls::TlsContext& context, int fd, const sockaddr* peer)
    : Stream(observer) {
  setPeerAddress(formatAddress(peer));
  SSL* ssl = context.newSsl().release();
  bufferevent* bev = nullptr;
  if (ssl != nullptr) {
    // On failure libevent frees the SSL itself (BEV_OPT_CLOSE_ON_FREE); the fd stays ours.
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
  }
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  adopt(bev);
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
}

ClientTlsStream::~ClientTlsStream() {
  SSL* session = ssl();
  if (session == nullptr) {
    return;
  }
  if (forget_ || failed_ || !handshake_done_) {
    return;  // libevent frees the SSL without SSL_shutdown: OpenSSL drops the session
  }
  // A clean session: close_notify (if not sent yet) and mark it shut down, so OpenSSL keeps it
  // resumable when libevent frees the SSL.
  if ((SSL_get_shutdown(session) & SSL_SENT_SHUTDOWN) == 0) {
    SSL_shutdown(session);
    ERR_clear_error();
  }
  SSL_set_shutdown(session, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

bool ClientTlsStream::start() {
  if (bev() == nullptr) {
    return false;
  }
  // No read high watermark on the TLS side: libevent would stop mid-record and leave decrypted
  // bytes inside OpenSSL until the client sends more. Callers bound input themselves.
  bufferevent_enable(bev(), EV_READ | EV_WRITE);
  return true;
}

SSL* ClientTlsStream::ssl() const {
  return bev() != nullptr ? bufferevent_openssl_get_ssl(bev()) : nullptr;
}

tls::SessionFacts ClientTlsStream::sessionFacts() const {
  return tls::describeSession(ssl());
}

X509* ClientTlsStream::peerCertificate() const {
  SSL* session = ssl();
  return session != nullptr ? SSL_get0_peer_certificate(session) : nullptr;
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

void ClientTlsStream::onConnected() {
  handshake_done_ = true;
  notify(StreamEvent::Connected);
}

void ClientTlsStream::onError(short what) {
  if (finishing() && failed_) {
    return;  // the raw linger reader reports the close
  }
  if ((what & BEV_EVENT_ERROR) != 0) {
    failed_ = true;
    while (unsigned long code = bufferevent_get_openssl_error(bev())) {
      errors_.push_back(code);
    }
    if (!handshake_done_) {
      auto failure = handshakeFailure();
      markClosed(CloseKind::Error, failure.reason + ": " + failure.detail);
      notify(StreamEvent::Closed);
      return;
    }
  }
  if (!handshake_done_ && (what & BEV_EVENT_EOF) != 0) {
    failed_ = true;  // EOF in the middle of a handshake
    markClosed(CloseKind::Error, "eof: client closed the connection during the handshake");
    notify(StreamEvent::Closed);
    return;
  }
  Stream::onError(what);
}

// bufferevent_openssl writes one TLS record per buffer chunk: make the first chunk large, so the
// client gets full-size records rather than one record (and one syscall) per 4 KiB read.
void ClientTlsStream::outputAppended() {
  evbuffer* out = output();
  if (out != nullptr) {
    evbuffer_pullup(out,
                    static_cast<ev_ssize_t>(std::min(evbuffer_get_length(out), kCoalesceBytes)));
  }
}

// close_notify after the last byte, on a session that finished its handshake cleanly. When the
// socket buffer is full OpenSSL keeps the alert pending; calling SSL_shutdown again writes it.
bool ClientTlsStream::writeTrailer() {
  SSL* session = ssl();
  if (session == nullptr || failed_ || !handshake_done_) {
    return true;
  }
  int rc = SSL_shutdown(session);
  bool retry = rc < 0 && SSL_get_error(session, rc) == SSL_ERROR_WANT_WRITE;
  ERR_clear_error();
  return !retry;
}

void ClientTlsStream::shutdownWrite() {
  Stream::shutdownWrite();
  if (!failed_) {
    return;
  }
  // After a failed handshake the TLS layer is unusable: read and drop raw bytes until the peer
  // closes, so the alert OpenSSL already wrote is read rather than destroyed by a reset.
  bufferevent_disable(bev(), EV_READ | EV_WRITE);
  linger_read_.reset(event_new(bufferevent_get_base(bev()), fd(), EV_READ | EV_PERSIST,
                               &ClientTlsStream::lingerRead, this));
  if (linger_read_) {
    event_add(linger_read_.get(), nullptr);
  }
}

void ClientTlsStream::lingerRead(evutil_socket_t fd, short, void* self) {
  auto* stream = static_cast<ClientTlsStream*>(self);
  char scratch[4096];
  // Bounded per callback, so a peer sending at line rate cannot hold the event loop.
  for (int reads = 0; reads < 16; ++reads) {
    ssize_t n = ::recv(fd, scratch, sizeof scratch, 0);
    if (n > 0) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return;
    }
    event_del(stream->linger_read_.get());
    stream->notify(StreamEvent::Closed);
    return;
  }
}  // still readable: the persistent event fires again on the next loop turn

}  // namespace mqtls::net

// ClientTlsStream: the client side, an accepted socket carrying server-side TLS. Reports
// Connected when the handshake has finished (the peer certificate, if any, verified), Closed on
// EOF, error or a failed handshake (handshakeFailure() then says why).
//
// Closing: finish() writes close_notify after the last byte (retrying while the socket buffer is
// full), then SHUT_WR. After a failed handshake OpenSSL has already queued its alert: finish()
// shuts the write side and reads and drops what the client still sends, so that the client
// reads the alert instead of a reset; the stream reports Closed again when the client closes.
// The stream is destroyed with its session kept resumable only when the session was clean and
// keepSession() was not revoked by forgetSession().
#pragma once

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <optional>
#include <string>

#include "net/stream.h"
#include "tls/context.h"

namespace mqtls::net {

class ClientTlsStream final : public Stream {
 public:
  // Takes ownership of `fd` (closed on failure too) and starts the server handshake with
  // `context`. On allocation failure the stream reports Closed(Error) from start().
  ClientTlsStream(StreamObserver& observer, event_base* base, const tls::TlsContext& context,
                  int fd, const sockaddr* peer);
  ~ClientTlsStream() override;

  // Starts the handshake (enables reading). Returns false if the stream could not be built.
  bool start();

  // Valid after Connected.
  tls::SessionFacts sessionFacts() const;
  // The verified leaf certificate, or null when the client sent none.
  X509* peerCertificate() const;
  // False when the client certificate is outside its validity period now (for a resumed session,
  // whose certificate was verified when the session began).
  bool certificateCurrent() const;
  // Valid after a Closed event during the handshake.
  tls::HandshakeFailure handshakeFailure() const;
  // The session must never be resumed (the client was refused after the handshake, or its
  // certificate is no longer valid). Removes it from the server's cache.
  void forgetSession();
  // The TLS connection (null if the stream could not be built). For reading its facts; the
  // stream alone drives it.
  SSL* ssl() const;

  void outputAppended() override;

 protected:
  void onConnected() override;
  void onError(short what) override;
  bool writeTrailer() override;
  void shutdownWrite() override;

 private:
  static void lingerRead(evutil_socket_t fd, short what, void* self);

  // Broker-to-client bytes gathered per TLS write (four full TLS records).
  static constexpr std::size_t kCoalesceBytes = 64 * 1024;

  bool handshake_done_ = false;
  bool failed_ = false;                // error after which the TLS session is unusable
  bool forget_ = false;                // forgetSession() was called
  EventPtr linger_read_;               // raw reads after a failed handshake
  std::vector<unsigned long> errors_;  // OpenSSL errors of a failed handshake, oldest first
};

}  // namespace mqtls::net

// ClientTlsStream: the client side, an accepted socket carrying server-side TLS. Reports
// Connected when the handshake has finished (the peer certificate, if any, verified), Closed on
// EOF, error or a failed handshake (handshakeFailure() then says why).
//
// OpenSSL reads and writes the socket through a GatheringSocket (net/gathering_socket.h): it
// reads ahead so that one recv takes several records, and the records written on one loop turn
// leave in one send; plaintext is written in full 16 KiB records.
//
// Closing: finish() writes close_notify after the last byte (retrying while the socket buffer is
// full), then SHUT_WR. After a failed handshake OpenSSL has already written its alert: finish()
// shuts the write side and reads and drops what the client still sends, so that the client
// reads the alert instead of a reset; the stream reports Closed again when the client closes.
// The stream is destroyed with its session kept resumable only when the session was clean and
// keepSession() was not revoked by forgetSession().
#pragma once

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/gathering_socket.h"
#include "net/stream.h"
#include "tls/context.h"
#include "tls/peer_identity.h"
#include "util/openssl_ptr.h"

namespace mqtls::net {

class ClientTlsStream final : public Stream {
 public:
  // Takes ownership of `fd` (closed on failure too); start() begins the server handshake with
  // `context`.
  ClientTlsStream(StreamObserver& observer, event_base* base, const tls::TlsContext& context,
                  int fd, const sockaddr* peer);
  ~ClientTlsStream() override;

  // Starts the handshake (enables reading). Returns false if the stream could not be built.
  bool start();

  // Valid after Connected.
  tls::SessionFacts sessionFacts() const;
  // The verified leaf certificate, or null when the client sent none.
  X509* peerCertificate() const;
  // The identity a resumed session carries from when it was stored (null if none).
  std::shared_ptr<const tls::PeerIdentity> keptPeerIdentity() const;
  // The server name the client asked for (SNI), empty when it sent none.
  std::string serverName() const;
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
  SSL* ssl() const { return ssl_.get(); }

 protected:
  IoResult receive(void* into, std::size_t capacity) override;
  IoResult send(evbuffer* from) override;
  IoResult handshake() override;
  bool holdsInput() const override;
  bool onConnected() override;
  bool writeTrailer() override;
  IoResult flushTransport() override;
  // After a failed TLS session the socket is read raw until the client closes.
  bool readableAfterClose() const override { return failed_; }

 private:
  // Largest plaintext per SSL_write: one full TLS record.
  static constexpr std::size_t kRecordBytes = 16 * 1024;
  // Read-ahead buffer: four full records and their overhead.
  static constexpr std::size_t kReadAheadBytes = 4 * (kRecordBytes + 512);

  // The session is unusable after `result`/`error`: records why (OpenSSL's error queue, or the
  // socket error) and returns Error.
  IoResult fail(int error);
  // Sending held records failed (errno says why): the session is unusable; records why unless a
  // close was already seen.
  void sendFailed();

  GatheringSocket socket_;  // declared before ssl_: the SSL's BIO points to it
  SslPtr ssl_;
  int pending_fd_ = -1;          // the socket until start() hands it to the stream
  std::size_t retry_write_ = 0;  // bytes of an SSL_write that must be retried as is
  bool handshake_done_ = false;
  bool failed_ = false;                // error after which the TLS session is unusable
  bool forget_ = false;                // forgetSession() was called
  bool close_notify_queued_ = false;   // SSL_shutdown wrote close_notify (maybe still held)
  std::vector<unsigned long> errors_;  // OpenSSL errors of a failed session, oldest first
};

}  // namespace mqtls::net

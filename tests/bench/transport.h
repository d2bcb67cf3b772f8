// One non-blocking client connection: TCP, optionally wrapped in TLS (OpenSSL used directly).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "endpoint.h"
#include "util/openssl_ptr.h"

namespace mqtls::bench {

using SslSessionPtr = std::unique_ptr<SSL_SESSION, OpenSslDeleter<SSL_SESSION_free>>;

struct TlsFiles {
  std::string ca;  // verifies the server when verify_server is set
  // The name or address (IPv4 or IPv6) the server certificate must carry (verify_server).
  std::string server_identity;
  std::string cert;  // client chain, leaf first
  std::string key;
  bool verify_server = false;
};

// A client SSL_CTX pinned to one protocol version (TLS1_2_VERSION or TLS1_3_VERSION), or
// nullptr with `error` set. Made in OpenSSL library context `library` (null: the default one).
SslCtxPtr makeClientContext(const TlsFiles& files, int version, std::string& error,
                            OSSL_LIB_CTX* library = nullptr);

enum class Io { Ok, WantRead, WantWrite, Closed, Failed };

struct IoResult {
  Io status = Io::Ok;
  std::size_t bytes = 0;
};

class Transport {
 public:
  // Starts connecting to `endpoint`. `ctx` null means plaintext; `session` (may be null) is
  // offered for resumption. On failure fd() is -1 and error() says why.
  Transport(const Endpoint& endpoint, SSL_CTX* ctx, SSL_SESSION* session);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_.get(); }
  const std::string& error() const { return error_; }

  // Drives the TCP connect and the TLS handshake; Ok once both are done.
  Io handshake();
  IoResult read(std::uint8_t* data, std::size_t size);
  IoResult write(const std::uint8_t* data, std::size_t size);
  // Sends close_notify (best effort, never blocks) so the session stays resumable.
  void shutdown();
  bool resumed() const;

 private:
  Io sslStatus(int ret, const char* what);

  int fd_ = -1;
  bool tcp_connected_ = false;
  SslPtr ssl_;
  std::string error_;
};

}  // namespace mqtls::bench

#include "transport.h"

#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mqtls::bench {
namespace {

std::string sslErrorText() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return std::strerror(errno);
  }
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

}  // namespace

SslCtxPtr makeClientContext(const TlsFiles& files, int version, std::string& error,
                            OSSL_LIB_CTX* library) {
  SslCtxPtr ctx(SSL_CTX_new_ex(library, nullptr, TLS_client_method()));
  if (!ctx) {
    error = "SSL_CTX_new: " + sslErrorText();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), version);
  SSL_CTX_set_max_proto_version(ctx.get(), version);
  // NO_AUTO_CHAIN: the client sends exactly the chain in its file. Without it, a leaf-only file
  // and a verify store (--ca with server verification) make OpenSSL build and send leaf,
  // intermediate and root: a "leaf only" run would measure a three-certificate chain.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_NO_AUTO_CHAIN);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "client certificate " + files.cert + ": " + sslErrorText();
    return nullptr;
  }
  if (files.verify_server) {
    if (SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr) != 1) {
      error = "CA file " + files.ca + ": " + sslErrorText();
      return nullptr;
    }
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx.get());
    // An address is checked without its IPv6 zone (fe80::1%eth0).
    const std::string identity =
        isIpAddress(files.server_identity)
            ? files.server_identity.substr(0, files.server_identity.find('%'))
            : files.server_identity;
    if (isIpAddress(identity) ? X509_VERIFY_PARAM_set1_ip_asc(param, identity.c_str()) != 1
                              : X509_VERIFY_PARAM_set1_host(param, identity.c_str(), 0) != 1) {
      error = "server identity '" + identity + "': " + sslErrorText();
      return nullptr;
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

Transport::Transport(const Endpoint& endpoint, SSL_CTX* ctx, SSL_SESSION* session) {
  fd_ = openClientSocket(endpoint, error_);
  if (fd_ < 0) {
    return;
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&endpoint.address), endpoint.length) == 0) {
    tcp_connected_ = true;
  } else if (errno != EINPROGRESS) {
    error_ = std::string("connect: ") + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    return;
  }
  if (ctx != nullptr) {
    ssl_.reset(SSL_new(ctx));
    SSL_set_fd(ssl_.get(), fd_);
    SSL_set_connect_state(ssl_.get());
    if (!applyServerName(ssl_.get(), endpoint)) {
      error_ = "server name '" + endpoint.server_name + "': " + sslErrorText();
      ssl_.reset();
      ::close(fd_);
      fd_ = -1;
      return;
    }
    if (session != nullptr) {
      SSL_set_session(ssl_.get(), session);
    }
  }
}

Transport::~Transport() {
  ssl_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Io Transport::sslStatus(int ret, const char* what) {
  int code = SSL_get_error(ssl_.get(), ret);
  switch (code) {
    case SSL_ERROR_WANT_READ:
      return Io::WantRead;
    case SSL_ERROR_WANT_WRITE:
      return Io::WantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return Io::Closed;
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        error_ = std::string(what) + ": connection closed (" + std::strerror(errno) + ")";
        return ret == 0 ? Io::Closed : Io::Failed;
      }
      [[fallthrough]];
    default:
      error_ = std::string(what) + ": " + sslErrorText();
      return Io::Failed;
  }
}

Io Transport::handshake() {
  if (!tcp_connected_) {
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      error_ = std::string("connect: ") + std::strerror(error);
      return Io::Failed;
    }
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    if (getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0) {
      return Io::WantWrite;
    }
    tcp_connected_ = true;
  }
  if (!ssl_) {
    return Io::Ok;
  }
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_.get());
  return ret == 1 ? Io::Ok : sslStatus(ret, "TLS handshake");
}

IoResult Transport::read(std::uint8_t* data, std::size_t size) {
  if (!ssl_) {
    ssize_t n = ::read(fd_, data, size);
    if (n > 0) {
      return {Io::Ok, static_cast<std::size_t>(n)};
    }
    if (n == 0) {
      return {Io::Closed, 0};
    }
    if (errno == EAGAIN || errno == EINTR) {
      return {Io::WantRead, 0};
    }
    error_ = std::string("read: ") + std::strerror(errno);
    return {Io::Failed, 0};
  }
  ERR_clear_error();
  std::size_t n = 0;
  int ret = SSL_read_ex(ssl_.get(), data, size, &n);
  return ret == 1 ? IoResult{Io::Ok, n} : IoResult{sslStatus(ret, "TLS read"), 0};
}

IoResult Transport::write(const std::uint8_t* data, std::size_t size) {
  if (!ssl_) {
    ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
    if (n >= 0) {
      return {Io::Ok, static_cast<std::size_t>(n)};
    }
    if (errno == EAGAIN || errno == EINTR) {
      return {Io::WantWrite, 0};
    }
    error_ = std::string("write: ") + std::strerror(errno);
    return {Io::Failed, 0};
  }
  ERR_clear_error();
  std::size_t n = 0;
  int ret = SSL_write_ex(ssl_.get(), data, size, &n);
  return ret == 1 ? IoResult{Io::Ok, n} : IoResult{sslStatus(ret, "TLS write"), 0};
}

void Transport::shutdown() {
  if (ssl_ && SSL_is_init_finished(ssl_.get())) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    // Whether or not close_notify got out, the session was complete and stays resumable.
    SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    ERR_clear_error();
  }
}

bool Transport::resumed() const {
  return ssl_ && SSL_session_reused(ssl_.get()) == 1;
}

}  // namespace mqtls::bench

#include "transport.h"

#include <arpa/inet.h>
#include <netdb.h>
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
    const std::string& identity = files.server_identity;
    if (isIpAddress(identity) ? X509_VERIFY_PARAM_set1_ip_asc(param, identity.c_str()) != 1
                              : X509_VERIFY_PARAM_set1_host(param, identity.c_str(), 0) != 1) {
      error = "server identity '" + identity + "': " + sslErrorText();
      return nullptr;
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

std::uint16_t Endpoint::port() const {
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
}

bool Endpoint::isLoopbackV4() const {
  return family() == AF_INET &&
         (ntohl(reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr) >> 24) == 127;
}

std::string Endpoint::text() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, host,
              sizeof host);
    std::string text = "[";
    text.append(host).append("]:").append(std::to_string(port()));
    return text;
  }
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(port());
}

bool resolveEndpoint(const std::string& host, int port, Endpoint& endpoint, std::string& error) {
  if (port <= 0 || port > 65535) {
    error = "port " + std::to_string(port) + " is not in 1..65535";
    return false;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int status = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (status != 0 || found == nullptr) {
    error = "cannot resolve '" + host + "': " + gai_strerror(status);
    return false;
  }
  std::memcpy(&endpoint.address, found->ai_addr, found->ai_addrlen);
  endpoint.length = found->ai_addrlen;
  freeaddrinfo(found);
  return true;
}

bool isIpAddress(const std::string& text) {
  in6_addr scratch{};
  return inet_pton(AF_INET, text.c_str(), &scratch) == 1 ||
         inet_pton(AF_INET6, text.c_str(), &scratch) == 1;
}

int openClientSocket(const Endpoint& endpoint, std::string& error) {
  int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool applyServerName(SSL* ssl, const Endpoint& endpoint) {
  return endpoint.server_name.empty() ||
         SSL_set_tlsext_host_name(ssl, endpoint.server_name.c_str()) == 1;
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

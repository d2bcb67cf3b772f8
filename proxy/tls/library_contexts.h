// LibraryContexts: one OpenSSL library context (OSSL_LIB_CTX) per worker. In OpenSSL 3.0 every
// certificate a handshake parses looks its public key decoder up in its library context's
// tables under read-write locks; workers sharing one library context bounce those locks'
// cache lines between cores on every handshake. Each worker's TLS contexts are therefore built
// in a library context of its own: worker 0 uses OpenSSL's default one (as a single-worker
// process always has), every further worker a new one configured from the same OpenSSL
// configuration file.
//
// What still runs in the default library context on every worker (OpenSSL 3.0 gives no way
// around it, or it is rare): the client certificate of a resumed TLS ticket (d2i_SSL_SESSION
// takes no library context before 3.2; stateful sessions are kept parsed), OCSP requests and
// responses, and the digests and ciphers mqtls names itself (EVP_sha256(), EVP_aes_256_cbc()). A
// listener whose key is on a PKCS#11 token keeps one context for all workers (ContextStore), so
// that the token is logged in to once per build.
//
// Each slot also has a library context for handshakes (tls/handshake_library.h): its SSL_CTXs are
// made there, so that parsing the certificates clients present walks six public-key decoders
// instead of forty, while files (certificates, keys, CA bundles, CRLs) are read in the slot's own
// library context as before.
//
// Made once, at start, before any worker runs: loading an ssl_conf section re-initialises a
// process-wide table, which is safe only while no other thread builds an SSL_CTX.
#pragma once

#include <openssl/crypto.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "util/openssl_ptr.h"

namespace mqtls::tls {

class HandshakeLibrary;

using LibCtxPtr = std::unique_ptr<OSSL_LIB_CTX, OpenSslDeleter<OSSL_LIB_CTX_free>>;

class LibraryContexts {
 public:
  // `slots` library contexts: slot 0 is OpenSSL's default one (null); each further slot gets a
  // new one configured as OpenSSL configures its default one: the configuration file
  // (OPENSSL_CONF or the built-in path) loaded if it exists, its default section, so providers
  // and settings match. A slot whose context cannot be made or configured falls back to the
  // default one (slot 0's TLS contexts then serve it), and warnings() says why.
  // Each slot's handshake library context is made over its library context; where it cannot
  // be (handshakeNote() says why), the slot's handshakes run in its library context.
  explicit LibraryContexts(std::size_t slots);
  ~LibraryContexts();

  // How many slots (at least 1).
  std::size_t size() const { return slots_.size(); }
  // The library context of `slot` (null: OpenSSL's default one); slots beyond size() share
  // the last one.
  OSSL_LIB_CTX* at(std::size_t slot) const;
  // The library context the SSL_CTXs of `slot` are made in: its handshake library context, or
  // at(slot) when it has none.
  OSSL_LIB_CTX* handshakesAt(std::size_t slot) const;
  // Why the slots have no handshake library contexts (empty when they have).
  const std::string& handshakeNote() const { return handshake_note_; }
  // What went wrong making the slots (empty when each further slot has its own context).
  const std::vector<std::string>& warnings() const { return warnings_; }

  LibraryContexts(const LibraryContexts&) = delete;
  LibraryContexts& operator=(const LibraryContexts&) = delete;

 private:
  std::vector<LibCtxPtr> slots_;  // slots_[0] is null (the default library context)
  // One per slot, or none; declared after slots_, so freed before them.
  std::vector<std::unique_ptr<HandshakeLibrary>> handshakes_;
  std::vector<std::string> warnings_;
  std::string handshake_note_;
};

}  // namespace mqtls::tls

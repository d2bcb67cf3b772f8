// A library context for handshakes. In OpenSSL 3.0 parsing a certificate (d2i_X509, which
// libssl runs on every certificate a client presents) decodes its public key through
// OSSL_DECODER_CTX_new_for_pkey, which walks every decoder the library context offers, several
// times over, with a read lock per name it compares: with the default provider's 40 decoders that
// walk costs more than the rest of the parse (75 us per certificate on the development machine,
// 32 us with the six a handshake can use). A handshake only ever decodes the public keys of
// certificates (SubjectPublicKeyInfo); reading PEM files and private keys is done beforehand, in
// the library context of the files (tls/library_contexts.h).
//
// makeHandshakeLibrary gives a library context whose one provider passes every operation through
// to the default provider of the files' library context, unchanged (the same implementations,
// the same provider context, so keys and algorithms behave as there), except that it offers only
// the SubjectPublicKeyInfo decoders of the key types a client certificate can carry for TLS
// (EC, RSA, RSA-PSS, Ed25519, Ed448, DSA). Keys read in the files' library context are used in
// it as OpenSSL uses any key of another provider: exported to it once, on first use, and kept.
#pragma once

#include <openssl/crypto.h>
#include <openssl/provider.h>

#include <cstddef>
#include <memory>
#include <string>

#include "tls/library_contexts.h"

namespace mqtls::tls {

// A handshake library context and the reference to its provider that loading it gave.
class HandshakeLibrary {
 public:
  HandshakeLibrary(LibCtxPtr library, OSSL_PROVIDER* provider)
      : library_(std::move(library)), provider_(provider) {}
  ~HandshakeLibrary() { OSSL_PROVIDER_unload(provider_); }  // before the context is freed
  OSSL_LIB_CTX* get() const { return library_.get(); }

  HandshakeLibrary(const HandshakeLibrary&) = delete;
  HandshakeLibrary& operator=(const HandshakeLibrary&) = delete;

 private:
  LibCtxPtr library_;
  OSSL_PROVIDER* provider_;
};

// The handshake library context over `files` (null: OpenSSL's default library context), or null
// with `why` set when there is none to make: `files` uses a provider other than "default" (a
// FIPS, legacy or PKCS#11 provider from OpenSSL's configuration stays in charge of every
// handshake, so its contexts keep using `files` itself), its default properties ask for FIPS,
// or OpenSSL fails. `files` must outlive the result; the result is freed before it.
std::unique_ptr<HandshakeLibrary> makeHandshakeLibrary(OSSL_LIB_CTX* files, std::string& why);

// How many files library contexts' default providers handshake library contexts still forward to:
// 0 once every handshake library context and everything made in it is gone.
std::size_t liveForwardings();
// Whether a handshake library context's provider still forwards to `files`.
bool forwardsTo(OSSL_LIB_CTX* files);

// How many decoders `library` offers (null: the default library context); for tests and logs.
int decoderCount(OSSL_LIB_CTX* library);

}  // namespace mqtls::tls

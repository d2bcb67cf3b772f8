#include "tls/library_contexts.h"

#include "tls/handshake_library.h"

#include <openssl/conf.h>
#include <openssl/err.h>

#include <algorithm>

namespace mqtls::tls {
namespace {

void freeOpenSslString(char* text) {
  OPENSSL_free(text);
}

// A new library context configured from OpenSSL's configuration file, or null with `why` set.
LibCtxPtr makeConfigured(std::string& why) {
  ERR_clear_error();
  LibCtxPtr library(OSSL_LIB_CTX_new());
  if (!library) {
    why = "cannot create an OpenSSL library context (" + takeOpenSslError() + ")";
    return nullptr;
  }
  // As OpenSSL configures its default library context: the default section, no error for a
  // missing file (a library context without configuration, like the default one then).
  constexpr unsigned long kFlags = CONF_MFLAGS_DEFAULT_SECTION | CONF_MFLAGS_IGNORE_MISSING_FILE;
  if (CONF_modules_load_file_ex(library.get(), nullptr, nullptr, kFlags) <= 0) {
    std::unique_ptr<char, OpenSslDeleter<freeOpenSslString>> file(CONF_get1_default_config_file());
    why = std::string("cannot load OpenSSL's configuration '") + (file ? file.get() : "?") +
          "' into a new library context (" + takeOpenSslError() + ")";
    return nullptr;
  }
  ERR_clear_error();
  return library;
}

}  // namespace

LibraryContexts::LibraryContexts(std::size_t slots) {
  slots_.emplace_back(nullptr);
  for (std::size_t i = 1; i < slots; ++i) {
    std::string why;
    LibCtxPtr library = makeConfigured(why);
    if (!library) {
      warnings_.push_back("worker " + std::to_string(i) + ": " + why +
                          "; it shares OpenSSL's default library context with worker 0");
    }
    slots_.push_back(std::move(library));
  }
  for (const auto& library : slots_) {
    auto handshakes = makeHandshakeLibrary(library.get(), handshake_note_);
    if (!handshakes) {
      handshakes_.clear();  // every slot alike: their files library contexts are configured alike
      return;
    }
    handshakes_.push_back(std::move(handshakes));
  }
}

LibraryContexts::~LibraryContexts() {
  handshakes_.clear();
  for (auto& library : slots_) {
    if (library && forwardsTo(library.get())) {
      // Something made in a handshake library context outlived it, so its provider, which
      // forwards to this slot's library context, is not torn down yet: keep that one alive
      // (the process is ending; nothing frees them earlier than this in mqtls).
      static_cast<void>(library.release());
    }
  }
}

OSSL_LIB_CTX* LibraryContexts::at(std::size_t slot) const {
  return slots_[std::min(slot, slots_.size() - 1)].get();
}

OSSL_LIB_CTX* LibraryContexts::handshakesAt(std::size_t slot) const {
  if (handshakes_.empty()) {
    return at(slot);
  }
  return handshakes_[std::min(slot, handshakes_.size() - 1)]->get();
}

}  // namespace mqtls::tls

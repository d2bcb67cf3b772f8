// The server private key on a PKCS#11 token (HSM, smart card, SoftHSM), named by an RFC 7512
// URI instead of a file, e.g.
//   pkcs11:token=mqtls;object=server;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so
//       &pin-source=file:/run/secrets/token-pin
// The key is used through OpenSSL's "pkcs11" engine (Debian: libengine-pkcs11-openssl): every
// signature is made by the token, and the key itself never reaches this process or the disk.
//
// Query attributes read here (RFC 7512 section 2.3):
//   pin-value=<PIN>            the user PIN, in the URI itself (prefer pin-source);
//   pin-source=file:<path>     a file whose first line is the PIN (also a bare absolute path);
//   module-path=<path>         the PKCS#11 module; without it the engine's default
//                              (PKCS11_MODULE_PATH, else p11-kit-proxy) is used.
// The engine holds one module per process: the first key loaded decides which module it is.
#pragma once

#include <string>
#include <string_view>

#include "util/openssl_ptr.h"
#include "util/result.h"

namespace mqtls::tls {

// True when `value` is a PKCS#11 URI (starts with "pkcs11:", scheme case-insensitive) rather
// than a file path.
bool isPkcs11Uri(std::string_view value);

// `uri` with the value of every pin-value attribute replaced by "***": the only form of a
// PKCS#11 URI that may appear in a message or a log line.
std::string redactPkcs11Uri(std::string_view uri);

// A PKCS#11 URI taken apart: what the engine is given, and what is handled here.
struct Pkcs11Uri {
  std::string engine_uri;   // "pkcs11:" + path attributes + other query attributes; no PIN
  std::string token_uri;    // "pkcs11:" + only the attributes that select the token
  std::string token_label;  // the token attribute, percent-decoded ("" if not given)
  std::string module_path;  // module-path, decoded ("" = the engine's default)
  std::string pin;          // from pin-value, decoded ("" if not given)
  std::string pin_file;     // from pin-source, decoded ("" if not given)
};

// Parses `uri` (which isPkcs11Uri accepts). Fails, with a message that never holds the PIN, on
// an attribute without '=', a bad %-escape, both pin-value and pin-source, or a pin-source
// that is not a file.
Result<Pkcs11Uri> parsePkcs11Uri(std::string_view uri);

// The private key `uri` names, loaded through the pkcs11 engine and logged in with its PIN
// (read from the pin-source file when given). The returned key keeps the engine initialized
// until it is freed, so it can sign for as long as anyone holds it. Never prompts: a token
// that needs a PIN nobody gave fails. Fails with a message (URI redacted, no PIN) that says
// which of these went wrong and how to fix it: the URI, the PIN file, the engine (not
// installed), the module (not loadable), the token (none matches), the PIN (refused), the
// object (no such private key on the token).
Result<EvpPkeyPtr> loadHardwareKey(const std::string& uri);

}  // namespace mqtls::tls

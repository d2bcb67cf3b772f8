// ENGINE is deprecated in OpenSSL 3, but it is the PKCS#11 route Debian 12 packages (there is
// no pkcs11-provider in bookworm); OpenSSL 3 still loads and runs engines.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "tls/hardware_key.h"

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

namespace mqtls::tls {
namespace {

constexpr std::string_view kScheme = "pkcs11:";
constexpr std::string_view kPinValue = "pin-value";
// Path attributes that select a token (RFC 7512 section 2.3); the rest select an object.
constexpr std::array<std::string_view, 10> kTokenAttributes = {"token",
                                                               "manufacturer",
                                                               "serial",
                                                               "model",
                                                               "slot-id",
                                                               "slot-description",
                                                               "slot-manufacturer",
                                                               "library-manufacturer",
                                                               "library-description",
                                                               "library-version"};

// Owners of the two kinds of ENGINE reference: structural (ENGINE_by_id) and functional
// (ENGINE_init; also holds a structural one).
using EngineRef = std::unique_ptr<ENGINE, OpenSslDeleter<ENGINE_free>>;
using EngineUse = std::unique_ptr<ENGINE, OpenSslDeleter<ENGINE_finish>>;
using UiMethodPtr = std::unique_ptr<UI_METHOD, OpenSslDeleter<UI_destroy_method>>;

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (!text.empty()) {
    const std::size_t end = text.find(separator);
    parts.push_back(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return parts;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = static_cast<char>(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// RFC 3986 percent-decoding; fails on a truncated or non-hex escape.
bool percentDecode(std::string_view text, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) {
      return false;
    }
    const int high = hexDigit(text[i + 1]);
    const int low = hexDigit(text[i + 2]);
    if (high < 0 || low < 0) {
      return false;
    }
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

// The file a pin-source value names ("file:/path" or "/path"), or "" if it names no file.
std::string pinSourceFile(const std::string& source) {
  std::string_view path = source;
  if (path.substr(0, 5) == "file:") {
    path.remove_prefix(5);
  }
  return !path.empty() && path.front() == '/' ? std::string(path) : std::string();
}

// Takes a pin-value, pin-source or module-path attribute into `out`; false for any other
// attribute. `error` is set when the attribute is one of those but unusable.
bool takeAttribute(std::string_view name, const std::string& value, Pkcs11Uri& out,
                   std::string& error) {
  if (name == kPinValue) {
    out.pin = value;
  } else if (name == "pin-source") {
    out.pin_file = pinSourceFile(value);
    if (out.pin_file.empty()) {
      error = "pin-source '" + value +
              "' is not a file; write pin-source=file:<absolute path of a file holding the PIN>";
    }
  } else if (name == "module-path") {
    out.module_path = value;
  } else {
    return false;
  }
  return true;
}

std::string join(const std::vector<std::string_view>& parts, char separator) {
  std::string text;
  for (std::string_view part : parts) {
    text += (text.empty() ? "" : std::string(1, separator)) + std::string(part);
  }
  return text;
}

}  // namespace

bool isPkcs11Uri(std::string_view value) {
  return value.size() >= kScheme.size() &&
         std::equal(kScheme.begin(), kScheme.end(), value.begin(),
                    [](char a, char b) { return a == (b | 0x20); });
}

std::string redactPkcs11Uri(std::string_view uri) {
  std::string out(uri);
  const std::string marker = std::string(kPinValue) + "=";
  for (std::size_t at = out.find(marker); at != std::string::npos; at = out.find(marker, at + 1)) {
    const std::size_t start = at + marker.size();
    const std::size_t end = std::min(out.find_first_of(";&?", start), out.size());
    out.replace(start, end - start, "***");
  }
  return out;
}

Result<Pkcs11Uri> parsePkcs11Uri(std::string_view uri) {
  Pkcs11Uri out;
  const std::string_view rest = uri.substr(std::min(uri.size(), kScheme.size()));
  const std::size_t question = rest.find('?');
  const auto path = split(rest.substr(0, question), ';');
  const auto query = question == std::string_view::npos ? std::vector<std::string_view>()
                                                        : split(rest.substr(question + 1), '&');
  std::vector<std::string_view> engine_path, engine_query, token_path;
  for (std::size_t i = 0; i < path.size() + query.size(); ++i) {
    const bool in_path = i < path.size();
    const std::string_view attribute = in_path ? path[i] : query[i - path.size()];
    if (attribute.empty()) {
      continue;
    }
    const std::size_t eq = attribute.find('=');
    const std::string_view name = attribute.substr(0, eq);
    std::string value;
    if (eq == std::string_view::npos || !percentDecode(attribute.substr(eq + 1), value)) {
      return Error{"'" + redactPkcs11Uri(attribute) + "' in the PKCS#11 URI is not name=value " +
                   "with %-escapes; write e.g. pkcs11:token=<label>;object=<key label>;" +
                   "type=private (RFC 7512)"};
    }
    std::string error;
    if (takeAttribute(name, value, out, error)) {
      if (!error.empty()) {
        return Error{error};
      }
      continue;
    }
    (in_path ? engine_path : engine_query).push_back(attribute);
    if (in_path && std::find(kTokenAttributes.begin(), kTokenAttributes.end(), name) !=
                       kTokenAttributes.end()) {
      token_path.push_back(attribute);
      out.token_label = name == "token" ? value : out.token_label;
    }
  }
  if (!out.pin.empty() && !out.pin_file.empty()) {
    return Error{"the PKCS#11 URI has both pin-value and pin-source; keep only pin-source"};
  }
  out.engine_uri = std::string(kScheme) + join(engine_path, ';') +
                   (engine_query.empty() ? "" : "?" + join(engine_query, '&'));
  out.token_uri = token_path.empty() ? "" : std::string(kScheme) + join(token_path, ';');
  return out;
}

namespace {

// The PIN: the first line of `path`, without its line ending.
Result<std::string> readPinFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{"cannot read the PIN file '" + path + "' (" + std::strerror(errno) +
                 "); point pin-source (or pin_file) at a readable file holding the token's PIN"};
  }
  std::string pin;
  std::getline(in, pin);
  if (!pin.empty() && pin.back() == '\r') {
    pin.pop_back();
  }
  if (pin.empty()) {
    return Error{"the PIN file '" + path + "' has no PIN on its first line; write the PIN there"};
  }
  return pin;
}

// A UI that answers every prompt with a failure: loading a key must never wait for a human.
int refusePrompt(UI*, UI_STRING*) {
  return 0;
}

UiMethodPtr noPrompt() {
  UiMethodPtr method(UI_create_method("mqtls: no PIN prompt"));
  if (method) {
    UI_method_set_reader(method.get(), &refusePrompt);
  }
  return method;
}

// Releases the functional engine reference a key holds; runs when the key is freed, after its
// key material (which needs the engine) is gone.
void finishEngine(void*, void* engine, CRYPTO_EX_DATA*, int, long, void*) {
  if (engine != nullptr) {
    ENGINE_finish(static_cast<ENGINE*>(engine));
  }
}

// The EVP_PKEY ex_data slot that ties a key to its engine. OpenSSL hands out ex_data indexes
// per process and never takes them back, so one is asked for once.
int engineSlot() {
  static const int slot = EVP_PKEY_get_ex_new_index(0, nullptr, nullptr, nullptr, &finishEngine);
  return slot;
}

// Every queued OpenSSL error reason, oldest first, joined by ": " (and clears the queue); the
// engine layer's own "failed loading private key", which adds nothing, is left out.
std::string drainErrors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    if (ERR_GET_LIB(code) == ERR_LIB_ENGINE &&
        ERR_GET_REASON(code) == ENGINE_R_FAILED_LOADING_PRIVATE_KEY) {
      continue;
    }
    const char* reason = ERR_reason_error_string(code);
    text += (text.empty() ? "" : ": ") + std::string(reason != nullptr ? reason : "error");
  }
  return text;
}

std::string moduleName(const Pkcs11Uri& uri) {
  return uri.module_path.empty() ? "the engine's default module" : "'" + uri.module_path + "'";
}

// The pkcs11 engine, initialized for `uri`'s module and PIN, or why it cannot be.
Result<EngineUse> startEngine(const Pkcs11Uri& uri) {
  EngineRef engine(ENGINE_by_id("pkcs11"));
  if (!engine) {
    return Error{"the OpenSSL engine 'pkcs11' is not available (" + drainErrors() +
                 "); install it (Debian: libengine-pkcs11-openssl)"};
  }
  ENGINE_ctrl_cmd_string(engine.get(), "QUIET", nullptr, 0);  // errors are reported here
  if (!uri.module_path.empty() &&
      ENGINE_ctrl_cmd_string(engine.get(), "MODULE_PATH", uri.module_path.c_str(), 0) != 1) {
    return Error{"the pkcs11 engine refuses module-path " + moduleName(uri) + " (" + drainErrors() +
                 "); give the path of the token's PKCS#11 module (.so)"};
  }
  if (ENGINE_init(engine.get()) != 1) {
    return Error{"cannot start the pkcs11 engine with " + moduleName(uri) + " (" + drainErrors() +
                 "); check module-path names the token's PKCS#11 module"};
  }
  EngineUse use(engine.get());
  if (!uri.pin.empty() && ENGINE_ctrl_cmd_string(engine.get(), "PIN", uri.pin.c_str(), 0) != 1) {
    return Error{"the pkcs11 engine refuses the PIN (" + drainErrors() + ")"};
  }
  return use;
}

// Why ENGINE_load_private_key found nothing, from the queued errors and, when they only say
// "not found", from whether the token alone can be found.
std::string explainFailure(ENGINE* engine, UI_METHOD* ui, const Pkcs11Uri& uri,
                           const std::string& shown) {
  const std::string detail = drainErrors();
  if (detail.find("Unable to load") != std::string::npos) {
    return "cannot use the PKCS#11 module " + moduleName(uri) + " (" + detail +
           "); set module-path=<path of the token's PKCS#11 module> in the URI";
  }
  const bool not_found = detail.find("not found") != std::string::npos;
  if (uri.pin.empty() && !not_found) {
    return "the token needs a PIN to use '" + shown + "' and none is given (" + detail +
           "); add 'pin_file: <file holding the PIN>', or pin-source=file:<file> to the URI";
  }
  if (detail.find("PIN") != std::string::npos || (!uri.pin.empty() && !not_found)) {
    return "the token refused the PIN for '" + shown + "' (" + detail +
           "); give the token's user PIN (repeated wrong PINs can lock the token)";
  }
  if (uri.token_uri.empty()) {
    return "no private key matches '" + shown + "' (" + detail +
           "); name the token and the key: pkcs11:token=<label>;object=<key label>;type=private";
  }
  EvpPkeyPtr any(ENGINE_load_private_key(engine, uri.token_uri.c_str(), ui, nullptr));
  ERR_clear_error();
  if (!any) {
    return "no PKCS#11 token matches '" + uri.token_uri + "' in " + moduleName(uri) +
           "; check the token label (softhsm2-util --show-slots, or pkcs11-tool --module " +
           "<module> --list-token-slots) and module-path";
  }
  return "the token '" + uri.token_label + "' holds no private key matching '" + shown +
         "'; check object= and id= against its keys (pkcs11-tool --module <module> --login " +
         "--list-objects --type privkey)";
}

}  // namespace

Result<EvpPkeyPtr> loadHardwareKey(const std::string& text) {
  const std::string shown = redactPkcs11Uri(text);
  auto uri = parsePkcs11Uri(text);
  if (!uri) {
    return uri.error();
  }
  if (!uri->pin_file.empty()) {
    auto pin = readPinFile(uri->pin_file);
    if (!pin) {
      return pin.error();
    }
    uri->pin = std::move(*pin);
  }
  ERR_clear_error();
  auto engine = startEngine(*uri);
  OPENSSL_cleanse(uri->pin.data(), uri->pin.size());
  if (!engine) {
    return engine.error();
  }
  UiMethodPtr ui = noPrompt();
  EvpPkeyPtr key(
      ENGINE_load_private_key(engine->get(), uri->engine_uri.c_str(), ui.get(), nullptr));
  if (!key) {
    return Error{explainFailure(engine->get(), ui.get(), *uri, shown)};
  }
  if (EVP_PKEY_set_ex_data(key.get(), engineSlot(), engine->get()) != 1) {
    return Error{"cannot tie the key '" + shown + "' to its engine (" + drainErrors() + ")"};
  }
  engine->release();  // now owned by the key: finishEngine
  ERR_clear_error();
  return key;
}

}  // namespace mqtls::tls

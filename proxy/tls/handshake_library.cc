#include "tls/handshake_library.h"

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

namespace mqtls::tls {
namespace {

constexpr const char* kProviderName = "mqtls-handshake";

// Key types whose certificates can authenticate a TLS client: their SubjectPublicKeyInfo
// decoders are what the handshake library context offers.
constexpr std::array<std::string_view, 6> kClientKeyTypes = {"EC",      "RSA",   "RSA-PSS",
                                                             "ED25519", "ED448", "DSA"};

// One forwarding provider's state: the default provider it passes through to (one reference
// held), that provider's decoders as queried (given back at the end) and the subset offered.
struct Forwarding {
  OSSL_LIB_CTX* files = nullptr;  // the library context `inner` belongs to (null: the default one)
  OSSL_PROVIDER* inner = nullptr;
  const OSSL_ALGORITHM* inner_decoders = nullptr;
  std::vector<OSSL_ALGORITHM> decoders;  // ends with an all-null entry
  int users = 0;
};

// Forwarding state by provider context. The provider hands the default provider's own context
// to every algorithm (they cast it to theirs), so the provider's functions, which receive the
// same pointer, find their state here. Two handshake library contexts over one files library
// context share one entry.
struct Registry {
  std::mutex mutex;
  std::map<const void*, Forwarding> by_context;
};

Registry& registry() {
  static auto* const instance = new Registry;  // lives until exit: teardowns may run late
  return *instance;
}

// Set by makeHandshakeLibrary for the one OSSL_PROVIDER_load call that runs providerInit.
thread_local const void* loading_context = nullptr;

OSSL_PROVIDER* innerOf(const void* context) {
  std::lock_guard lock(registry().mutex);
  auto found = registry().by_context.find(context);
  return found != registry().by_context.end() ? found->second.inner : nullptr;
}

const OSSL_ALGORITHM* query(void* context, int operation, int* no_cache) {
  if (operation == OSSL_OP_DECODER) {
    std::lock_guard lock(registry().mutex);
    auto found = registry().by_context.find(context);
    if (found == registry().by_context.end()) {
      return nullptr;
    }
    *no_cache = 0;
    return found->second.decoders.data();
  }
  OSSL_PROVIDER* inner = innerOf(context);
  return inner != nullptr ? OSSL_PROVIDER_query_operation(inner, operation, no_cache) : nullptr;
}

void unquery(void* context, int operation, const OSSL_ALGORITHM* algorithms) {
  if (operation == OSSL_OP_DECODER) {
    return;  // the subset is ours; the inner list is given back at teardown
  }
  if (OSSL_PROVIDER* inner = innerOf(context)) {
    OSSL_PROVIDER_unquery_operation(inner, operation, algorithms);
  }
}

const OSSL_PARAM* gettableParams(void* context) {
  OSSL_PROVIDER* inner = innerOf(context);
  return inner != nullptr ? OSSL_PROVIDER_gettable_params(inner) : nullptr;
}

int getParams(void* context, OSSL_PARAM params[]) {
  OSSL_PROVIDER* inner = innerOf(context);
  return inner != nullptr ? OSSL_PROVIDER_get_params(inner, params) : 0;
}

int getCapabilities(void* context, const char* capability, OSSL_CALLBACK* callback, void* arg) {
  OSSL_PROVIDER* inner = innerOf(context);
  return inner != nullptr ? OSSL_PROVIDER_get_capabilities(inner, capability, callback, arg) : 0;
}

void dropIfUnused(const void* context);

// OpenSSL's teardown of one loaded forwarding provider: one user fewer, the entry released with
// the last.
void teardown(void* context) {
  {
    std::lock_guard lock(registry().mutex);
    auto found = registry().by_context.find(context);
    if (found == registry().by_context.end() || --found->second.users > 0) {
      return;
    }
  }
  dropIfUnused(context);
}

const OSSL_DISPATCH kDispatch[] = {
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, reinterpret_cast<void (*)()>(&gettableParams)},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, reinterpret_cast<void (*)()>(&getParams)},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, reinterpret_cast<void (*)()>(&query)},
    {OSSL_FUNC_PROVIDER_UNQUERY_OPERATION, reinterpret_cast<void (*)()>(&unquery)},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, reinterpret_cast<void (*)()>(&getCapabilities)},
    {OSSL_FUNC_PROVIDER_TEARDOWN, reinterpret_cast<void (*)()>(&teardown)},
    {0, nullptr}};

int providerInit(const OSSL_CORE_HANDLE*, const OSSL_DISPATCH*, const OSSL_DISPATCH** out,
                 void** provider_context) {
  if (loading_context == nullptr) {
    return 0;  // loaded other than through makeHandshakeLibrary
  }
  {
    std::lock_guard lock(registry().mutex);
    auto found = registry().by_context.find(loading_context);
    if (found == registry().by_context.end()) {
      return 0;
    }
    ++found->second.users;  // from here on OpenSSL calls teardown for this user
  }
  *provider_context = const_cast<void*>(loading_context);
  *out = kDispatch;
  return 1;
}

bool offeredForHandshakes(const OSSL_ALGORITHM& decoder) {
  const std::string_view properties =
      decoder.property_definition != nullptr ? decoder.property_definition : std::string_view{};
  if (properties.find("structure=SubjectPublicKeyInfo") == std::string_view::npos) {
    return false;
  }
  std::string_view names = decoder.algorithm_names;
  const std::string_view first = names.substr(0, names.find(':'));
  return std::find(kClientKeyTypes.begin(), kClientKeyTypes.end(), first) != kClientKeyTypes.end();
}

// Registers (or finds) the forwarding state for `inner`, whose reference it takes over; returns
// the provider context to load with. The entry counts no user until providerInit runs.
const void* registerForwarding(OSSL_LIB_CTX* files, OSSL_PROVIDER* inner) {
  const void* context = OSSL_PROVIDER_get0_provider_ctx(inner);
  std::lock_guard lock(registry().mutex);
  auto [entry, added] = registry().by_context.try_emplace(context);
  Forwarding& forwarding = entry->second;
  if (!added) {
    OSSL_PROVIDER_unload(inner);  // the entry holds a reference already
    return context;
  }
  int no_cache = 0;
  forwarding.files = files;
  forwarding.inner = inner;
  forwarding.inner_decoders = OSSL_PROVIDER_query_operation(inner, OSSL_OP_DECODER, &no_cache);
  for (const OSSL_ALGORITHM* d = forwarding.inner_decoders; d && d->algorithm_names; ++d) {
    if (offeredForHandshakes(*d)) {
      forwarding.decoders.push_back(*d);
    }
  }
  forwarding.decoders.push_back(OSSL_ALGORITHM{nullptr, nullptr, nullptr, nullptr});
  return context;
}

// Drops the entry of `context`, giving back the default provider's decoders and reference, if no
// loaded provider counts as its user (after the last teardown, or a load that failed before
// providerInit counted one).
void dropIfUnused(const void* context) {
  OSSL_PROVIDER* release = nullptr;
  const OSSL_ALGORITHM* decoders = nullptr;
  {
    std::lock_guard lock(registry().mutex);
    auto found = registry().by_context.find(context);
    if (found == registry().by_context.end() || found->second.users > 0) {
      return;
    }
    release = found->second.inner;
    decoders = found->second.inner_decoders;
    registry().by_context.erase(found);
  }
  OSSL_PROVIDER_unquery_operation(release, OSSL_OP_DECODER, decoders);
  OSSL_PROVIDER_unload(release);
}

// Names of the providers `files` has activated (activating its fallback, "default", if none).
std::vector<std::string> activeProviders(OSSL_LIB_CTX* files) {
  std::vector<std::string> names;
  OSSL_PROVIDER_do_all(
      files,
      [](OSSL_PROVIDER* provider, void* arg) {
        static_cast<std::vector<std::string>*>(arg)->emplace_back(
            OSSL_PROVIDER_get0_name(provider));
        return 1;
      },
      &names);
  return names;
}

}  // namespace

std::unique_ptr<HandshakeLibrary> makeHandshakeLibrary(OSSL_LIB_CTX* files, std::string& why) {
  ERR_clear_error();
  OSSL_PROVIDER_available(files, "default");  // activates the fallback provider if none is
  const std::vector<std::string> providers = activeProviders(files);
  if (providers != std::vector<std::string>{"default"}) {
    std::string list;
    for (const auto& name : providers) {
      list += (list.empty() ? "" : ", ") + name;
    }
    why = "OpenSSL's configuration activates the providers [" + list +
          "], not the default provider alone";
    return nullptr;
  }
  if (EVP_default_properties_is_fips_enabled(files) != 0) {
    why = "OpenSSL's configuration asks for FIPS algorithms";
    return nullptr;
  }
  LibCtxPtr library(OSSL_LIB_CTX_new());
  OSSL_PROVIDER* inner = OSSL_PROVIDER_load(files, "default");
  if (!library || inner == nullptr) {
    if (inner != nullptr) {
      OSSL_PROVIDER_unload(inner);
    }
    why = "cannot create a library context for handshakes (" + takeOpenSslError() + ")";
    return nullptr;
  }
  loading_context = registerForwarding(files, inner);
  OSSL_PROVIDER* provider =
      OSSL_PROVIDER_add_builtin(library.get(), kProviderName, &providerInit) == 1
          ? OSSL_PROVIDER_load(library.get(), kProviderName)
          : nullptr;
  const void* context = std::exchange(loading_context, nullptr);
  if (provider == nullptr) {
    // If providerInit ran, OpenSSL has called teardown for its user already.
    dropIfUnused(context);
    why = "cannot load the handshake provider (" + takeOpenSslError() + ")";
    return nullptr;
  }
  ERR_clear_error();
  return std::make_unique<HandshakeLibrary>(std::move(library), provider);
}

std::size_t liveForwardings() {
  std::lock_guard lock(registry().mutex);
  return registry().by_context.size();
}

bool forwardsTo(OSSL_LIB_CTX* files) {
  std::lock_guard lock(registry().mutex);
  return std::any_of(registry().by_context.begin(), registry().by_context.end(),
                     [files](const auto& entry) { return entry.second.files == files; });
}

int decoderCount(OSSL_LIB_CTX* library) {
  int count = 0;
  OSSL_DECODER_do_all_provided(
      library, [](OSSL_DECODER*, void* arg) { ++*static_cast<int*>(arg); }, &count);
  return count;
}

}  // namespace mqtls::tls

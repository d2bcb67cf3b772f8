// The checks of a configuration that need more than its YAML: each listener's TLS context is
// built (tls::ContextStore::build, the one place a listener's context is built) as part of
// validation, and every problem it reports is placed at the position of the setting it
// concerns, among the loader's own errors, in file order. Used by `mqtls --check` and at
// startup, so both report the same errors the same way.
#pragma once

#include <string>
#include <vector>

#include "config/loader.h"
#include "tls/context.h"

namespace mqtls::startup {

struct CheckedConfig {
  // The loader's result with the TLS problems added: errors (config is unset if any) and
  // warnings, each "file:line:column: listeners[i].tls.<key>: problem; fix".
  config::LoadResult loaded;
  // One context per listener, in order, when loaded.ok(); empty otherwise.
  std::vector<tls::TlsContextPtr> contexts;
  // The admin listener's HTTPS context when admin.tls is set and loaded.ok(); else null.
  tls::TlsContextPtr admin_context;
};

// Loads the file at `path` and checks it completely.
CheckedConfig checkConfigFile(const std::string& path);

// Adds the TLS checks to an already loaded result. Listeners are built from loaded.read, so
// TLS problems are found even when the YAML had errors; a TLS problem about a setting the
// loader could not read is left out (the loader already reported that setting).
CheckedConfig checkLoaded(config::LoadResult loaded);

}  // namespace mqtls::startup

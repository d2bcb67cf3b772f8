#include "startup_check.h"

#include <optional>
#include <utility>

#include "tls/context_store.h"

namespace mqtls::startup {
namespace {

// Where the problem's setting was written. Unknown positions (a setting the loader did not
// read without error) give nullopt when the loader reported errors, since it explained that
// setting already; otherwise an unpositioned place, so that no problem is ever lost.
std::optional<config::SettingPosition> placeOf(const config::LoadResult& loaded, bool yaml_errors,
                                               const std::string& listener_path,
                                               const std::string& key) {
  const std::string full = listener_path + ".tls." + key;
  if (auto it = loaded.positions.find(full); it != loaded.positions.end()) {
    return it->second;
  }
  if (yaml_errors) {
    return std::nullopt;
  }
  return config::SettingPosition{0, 0, full};
}

// Builds the context of the settings at `path` ("listeners[i]" or "admin"), adding its problems
// to `loaded`. Null on errors.
tls::TlsContextPtr checkContext(config::LoadResult& loaded, bool yaml_errors,
                                const std::string& path, const config::TlsSettings& settings) {
  tls::BuildReport report;
  tls::TlsContextPtr context = tls::ContextStore::build(settings, report);
  for (const auto& problem : report.errors) {
    if (auto at = placeOf(loaded, yaml_errors, path, problem.key)) {
      loaded.addError(*at, problem.message);
    }
  }
  for (const auto& problem : report.warnings) {
    if (auto at = placeOf(loaded, yaml_errors, path, problem.key)) {
      loaded.addWarning(*at, "warning: " + problem.message);
    }
  }
  return context;
}

}  // namespace

CheckedConfig checkLoaded(config::LoadResult loaded) {
  CheckedConfig checked;
  std::vector<tls::TlsContextPtr> contexts;
  bool all_built = true;
  const bool yaml_errors = !loaded.errors.empty();
  for (std::size_t i = 0; i < loaded.read.listeners.size(); ++i) {
    const config::TlsSettings settings = loaded.read.listeners[i].tls;
    tls::TlsContextPtr context =
        checkContext(loaded, yaml_errors, "listeners[" + std::to_string(i) + "]", settings);
    all_built = all_built && context != nullptr;
    contexts.push_back(std::move(context));
  }
  tls::TlsContextPtr admin_context;
  if (const auto& admin_tls = loaded.read.admin.tls) {
    const config::TlsSettings settings = *admin_tls;
    admin_context = checkContext(loaded, yaml_errors, "admin", settings);
    all_built = all_built && admin_context != nullptr;
  }
  if (loaded.ok() && all_built) {
    checked.contexts = std::move(contexts);
    checked.admin_context = std::move(admin_context);
  }
  checked.loaded = std::move(loaded);
  return checked;
}

CheckedConfig checkConfigFile(const std::string& path) {
  return checkLoaded(config::loadConfigFile(path));
}

}  // namespace mqtls::startup

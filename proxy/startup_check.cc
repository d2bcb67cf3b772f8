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

// Builds listener `index`'s context, adding its problems to `loaded`. Null on errors.
tls::TlsContextPtr checkListener(config::LoadResult& loaded, bool yaml_errors, std::size_t index) {
  const std::string path = "listeners[" + std::to_string(index) + "]";
  tls::BuildReport report;
  tls::TlsContextPtr context = tls::ContextStore::build(loaded.read.listeners[index].tls, report);
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
    tls::TlsContextPtr context = checkListener(loaded, yaml_errors, i);
    all_built = all_built && context != nullptr;
    contexts.push_back(std::move(context));
  }
  if (loaded.ok() && all_built) {
    checked.contexts = std::move(contexts);
  }
  checked.loaded = std::move(loaded);
  return checked;
}

CheckedConfig checkConfigFile(const std::string& path) {
  return checkLoaded(config::loadConfigFile(path));
}

}  // namespace mqtls::startup

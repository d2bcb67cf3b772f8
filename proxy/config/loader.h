// Loading: YAML text -> validated, frozen Config. yaml-cpp exceptions stop at this boundary.
// Every problem found is reported, each as "file:line:column: key: what is wrong; how to fix".
#pragma once

#include <string>
#include <vector>

#include "config/model.h"

namespace mqtls::config {

struct LoadResult {
  std::optional<Config> config;     // set iff errors is empty
  std::vector<std::string> errors;  // every error found, in file order
  bool ok() const { return config.has_value(); }
};

// Reads and validates the file at `path`. ${VAR} and ${VAR:-default} are expanded in scalar
// values before they are interpreted; an unset ${VAR} without default is an error.
LoadResult loadConfigFile(const std::string& path);

// As loadConfigFile, from text; `source_name` is used in error positions and relative paths
// are resolved against `base_dir` (empty: the process working directory).
LoadResult loadConfigText(const std::string& text, const std::string& source_name,
                          const std::string& base_dir = {});

}  // namespace mqtls::config

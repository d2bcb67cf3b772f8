// Loading: YAML text -> validated, frozen Config. yaml-cpp exceptions stop at this boundary.
// Every problem found is reported, each as "file:line:column: key: what is wrong; how to fix".
// The loader checks what the YAML says; checks that need the files it names (TLS material) run
// afterwards over the same result (startup_check.h) and add their problems to it in file order.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/model.h"
#include "config/positions.h"

namespace mqtls::config {

struct LoadResult {
  std::optional<Config> config;       // set iff errors is empty
  std::vector<std::string> errors;    // every error found, in file order
  std::vector<std::string> warnings;  // problems that do not stop the proxy, in file order
  bool ok() const { return config.has_value(); }

  // For the checks made after loading, kept even when errors were found:
  std::string source_name;     // what error lines start with
  Config read;                 // the model as far as it could be read (bad values at defaults)
  SettingPositions positions;  // where the settings those checks concern were written

  // Adds a problem found after loading, in file order, as "source:line:column: path: message"
  // ("source: path: message" when at.line is 0). An error clears `config`.
  void addError(const SettingPosition& at, const std::string& message);
  void addWarning(const SettingPosition& at, const std::string& message);

  // (line, column) of errors[i] and warnings[i], 1-based; (0, 0) when unpositioned.
  std::vector<std::pair<int, int>> error_positions;
  std::vector<std::pair<int, int>> warning_positions;
};

// Reads and validates the file at `path`. ${VAR} and ${VAR:-default} are expanded in scalar
// values before they are interpreted; an unset ${VAR} without default is an error.
LoadResult loadConfigFile(const std::string& path);

// As loadConfigFile, from text; `source_name` is used in error positions and relative paths
// are resolved against `base_dir` (empty: the process working directory).
LoadResult loadConfigText(const std::string& text, const std::string& source_name,
                          const std::string& base_dir = {});

}  // namespace mqtls::config

// Changing the process-wide log level at run time (PUT /log/level, SIGUSR1).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mqtls::ops {

// The level in force: "trace", "debug", "info", "warn", "error", "critical" or "off".
std::string logLevel();
// Sets the level of the process-wide logger. Fails (nothing changes) on an unknown name.
bool setLogLevel(std::string_view level);
// info -> debug -> trace -> info (any other level -> info); returns the new level.
std::string cycleLogLevel();
// The level named by a PUT /log/level body: a bare name ("debug") or {"level": "debug"},
// surrounding white space ignored. nullopt when the body is neither.
std::optional<std::string> parseLevelBody(std::string_view body);

}  // namespace mqtls::ops

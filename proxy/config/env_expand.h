// Environment expansion for configuration values: "${NAME}" and "${NAME:-default}".
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace mqtls::config {

// Replaces every "${NAME}" with the value of environment variable NAME, and every
// "${NAME:-default}" with NAME's value, or with `default` (taken literally, up to the first '}')
// when NAME is unset or empty. A '$' not followed by '{' is kept as is. NAME is
// [A-Za-z_][A-Za-z0-9_]*. Fails, naming the problem, on an unset NAME without default, an
// unterminated "${" or an invalid NAME; the result is never partially expanded.
Result<std::string> expandEnv(std::string_view text);

}  // namespace mqtls::config

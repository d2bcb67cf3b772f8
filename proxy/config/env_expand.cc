#include "config/env_expand.h"

#include <cstdlib>

namespace mqtls::config {
namespace {

bool isNameStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

bool isNameChar(char c) {
  return isNameStart(c) || (c >= '0' && c <= '9');
}

bool isValidName(std::string_view name) {
  if (name.empty() || !isNameStart(name.front())) {
    return false;
  }
  for (char c : name) {
    if (!isNameChar(c)) {
      return false;
    }
  }
  return true;
}

// Expands the inside of one "${...}" (without the braces).
Result<std::string> expandReference(std::string_view inner) {
  const std::size_t dash = inner.find(":-");
  const std::string_view name = inner.substr(0, dash);
  if (!isValidName(name)) {
    return Error{"invalid variable name in '${" + std::string(inner) +
                 "}'; use ${NAME} or ${NAME:-default} with NAME made of letters, digits and '_'"};
  }
  const char* value = std::getenv(std::string(name).c_str());
  if (dash != std::string_view::npos) {
    if (value == nullptr || *value == '\0') {
      return std::string(inner.substr(dash + 2));
    }
    return std::string(value);
  }
  if (value == nullptr) {
    return Error{"environment variable '" + std::string(name) +
                 "' is not set; set it or give a default with ${" + std::string(name) + ":-value}"};
  }
  return std::string(value);
}

}  // namespace

Result<std::string> expandEnv(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '$' || i + 1 >= text.size() || text[i + 1] != '{') {
      out.push_back(text[i++]);
      continue;
    }
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Error{"unterminated '${' in '" + std::string(text) + "'; close it with '}'"};
    }
    auto expanded = expandReference(text.substr(i + 2, close - i - 2));
    if (!expanded) {
      return expanded.error();
    }
    out += *expanded;
    i = close + 1;
  }
  return out;
}

}  // namespace mqtls::config

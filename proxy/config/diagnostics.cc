#include "config/diagnostics.h"

#include <algorithm>

namespace mqtls::config {

void Diagnostics::add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
  std::string text = source_;
  int line = -1;
  int column = -1;
  if (!mark.is_null() && mark.line >= 0 && mark.column >= 0) {
    line = mark.line;
    column = mark.column;
    text += ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1);
  }
  text += ": ";
  if (!path.empty()) {
    text.append(path).append(": ");
  }
  text.append(message);
  entries_.push_back(Entry{line, column, std::move(text)});
}

std::vector<Diagnostics::Entry> Diagnostics::sortedEntries() const {
  std::vector<Entry> ordered = entries_;
  std::stable_sort(ordered.begin(), ordered.end(), [](const Entry& a, const Entry& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  return ordered;
}

std::vector<std::string> Diagnostics::sorted() const {
  std::vector<Entry> ordered = sortedEntries();
  std::vector<std::string> out;
  out.reserve(ordered.size());
  for (auto& entry : ordered) {
    out.push_back(std::move(entry.text));
  }
  return out;
}

}  // namespace mqtls::config

// Error collection for the loader: every problem is kept with its YAML position, and the list
// comes out sorted in file order, each line "file:line:column: key.path: message".
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/mark.h>

namespace mqtls::config {

class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  // Records a problem at `mark` (yaml-cpp's 0-based position; printed 1-based). A null mark
  // prints as "file: key.path: message". `path` may be empty (then it is left out).
  void add(const YAML::Mark& mark, std::string_view path, std::string_view message);

  bool empty() const { return entries_.empty(); }

  // One recorded problem: 0-based position (-1 when unknown) and its full text.
  struct Entry {
    int line;
    int column;
    std::string text;
  };

  // The messages ordered by position (unpositioned first); equal positions keep insertion order.
  std::vector<std::string> sorted() const;
  // The same order, with positions.
  std::vector<Entry> sortedEntries() const;

 private:
  std::string source_;
  std::vector<Entry> entries_;
};

}  // namespace mqtls::config

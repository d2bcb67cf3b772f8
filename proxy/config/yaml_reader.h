// Typed, position-aware reading of yaml-cpp nodes into the model. Every reader reports its
// problems to the shared Diagnostics and never throws; on a bad value the model keeps its default
// (the load fails anyway, since an error was recorded).
#pragma once

#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/diagnostics.h"
#include "config/model.h"
#include "config/positions.h"

namespace mqtls::config {

// State shared by the readers of one load.
struct Context {
  Diagnostics diag;
  std::filesystem::path base_dir;  // absolute; relative file paths are resolved against it
  SettingPositions positions;      // filled by the readers of settings checked after loading
};

// One value looked up in a map, with its key path ("listeners[0].tls.cert") and position: the
// value's own, or the enclosing map's when the key is absent.
struct Field {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;
  // A null value ("key:" or "key: ~") counts as absent: the default applies.
  bool present() const { return node.IsDefined() && !node.IsNull(); }
};

// Records where `field`'s value was written, under `key` (see config/positions.h).
void recordPosition(Context& ctx, const std::string& key, const Field& field);

// "parent.key", or "key" at the root.
std::string childPath(std::string_view parent, std::string_view key);

// A YAML map being read. Construction reports a value that is not a map, non-scalar keys,
// duplicate keys and unknown keys (suggesting the closest known key). An absent field reads as
// an empty map.
class Section {
 public:
  Section(Context& ctx, const Field& field, std::initializer_list<std::string_view> known);

  // The value of `key`, one of the known keys.
  Field field(std::string_view key) const;
  // As field(); reports a missing (or null) key unless this section is not a map, or an unknown
  // key that looks like a misspelling of `key` was already reported.
  Field require(std::string_view key, std::string_view hint) const;

  bool isMap() const { return is_map_; }
  const std::string& path() const { return path_; }
  const YAML::Mark& mark() const { return mark_; }

 private:
  struct Entry {
    std::string key;
    YAML::Node value;
    YAML::Mark key_mark;
  };
  const Entry* find(std::string_view key) const;

  Context& ctx_;
  std::string path_;
  YAML::Mark mark_;
  bool is_map_ = true;
  std::vector<Entry> entries_;
  std::vector<std::string> suggested_;
};

// " (did you mean 'x'?)" for the candidate closest to `word` by edit distance, or "" if none is
// close enough to be a plausible misspelling.
std::string suggestion(std::string_view word, std::span<const std::string_view> candidates);

// The closest candidate as above, or empty.
std::string_view closestMatch(std::string_view word, std::span<const std::string_view> candidates);

// How a node looks, for "got ..." in messages: "a map", "a sequence", "'text'", "nothing".
std::string describe(const YAML::Node& node);

// Readers of present fields; all return nullopt on an absent field (without report) and on an
// unacceptable value (with report). Scalars are environment-expanded (config/env_expand.h)
// before they are interpreted; `what` names the expected value for type errors.
std::optional<std::string> readScalar(Context& ctx, const Field& field, std::string_view what);
std::optional<std::string> readString(Context& ctx, const Field& field);
// A non-empty file path, resolved against ctx.base_dir when relative.
std::optional<std::string> readPath(Context& ctx, const Field& field);
std::optional<long long> readInteger(Context& ctx, const Field& field, long long min,
                                     long long max);
// Integer seconds, or a number with suffix ms|s|m|h; within [min, max].
std::optional<Duration> readDuration(Context& ctx, const Field& field, Duration min, Duration max);
// Integer bytes, or a number with suffix KiB|MiB; within [min, max].
std::optional<std::size_t> readSize(Context& ctx, const Field& field, std::size_t min,
                                    std::size_t max);
// The index of the value among `names` (exact match).
std::optional<std::size_t> readChoice(Context& ctx, const Field& field,
                                      std::span<const std::string_view> names);
// A scalar (one item, same path) or a sequence (items with paths "key[i]"). Items are not
// type-checked here.
std::vector<Field> readList(Context& ctx, const Field& field);

template <typename E>
struct Choice {
  std::string_view name;
  E value;
};

// readChoice over (name, enum value) pairs; stores the value in `out` when acceptable. True
// unless a value was given and refused.
template <typename E>
bool readEnum(Context& ctx, const Field& field, std::initializer_list<Choice<E>> choices, E& out) {
  std::vector<std::string_view> names;
  for (const auto& choice : choices) {
    names.push_back(choice.name);
  }
  auto index = readChoice(ctx, field, names);
  if (index) {
    out = std::data(choices)[*index].value;
  }
  return index.has_value() || !field.present();
}

}  // namespace mqtls::config

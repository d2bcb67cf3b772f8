#include <algorithm>

#include "config/yaml_reader.h"

namespace mqtls::config {

Section::Section(Context& ctx, const Field& field, std::initializer_list<std::string_view> known)
    : ctx_(ctx), path_(field.path), mark_(field.mark) {
  if (!field.present()) {
    return;
  }
  if (!field.node.IsMap()) {
    is_map_ = false;
    ctx.diag.add(field.mark, path_,
                 "expected a map of settings, got " + describe(field.node) +
                     "; write 'key: value' lines indented under it");
    return;
  }
  const std::vector<std::string_view> names(known);
  for (const auto& item : field.node) {
    const YAML::Node& key = item.first;
    if (!key.IsScalar()) {
      ctx.diag.add(key.Mark(), path_, "a key must be a plain name, got " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    const std::string path = childPath(path_, name);
    if (find(name) != nullptr) {
      ctx.diag.add(key.Mark(), path, "duplicate key '" + name + "'; keep only one of them");
      continue;
    }
    entries_.push_back(Entry{name, item.second, key.Mark()});
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      continue;
    }
    const std::string_view best = closestMatch(name, names);
    if (best.empty()) {
      std::string list;
      for (auto known_name : names) {
        list += (list.empty() ? "" : ", ") + std::string(known_name);
      }
      ctx.diag.add(key.Mark(), path,
                   "unknown key '" + name + "'; remove it (known keys here: " + list + ")");
    } else {
      suggested_.emplace_back(best);
      ctx.diag.add(key.Mark(), path,
                   "unknown key '" + name + "' (did you mean '" + std::string(best) +
                       "'?); correct its spelling or remove it");
    }
  }
}

const Section::Entry* Section::find(std::string_view key) const {
  for (const auto& entry : entries_) {
    if (entry.key == key) {
      return &entry;
    }
  }
  return nullptr;
}

Field Section::field(std::string_view key) const {
  const std::string path = childPath(path_, key);
  const Entry* entry = find(key);
  if (entry == nullptr) {
    return Field{YAML::Node(), path, mark_};
  }
  const YAML::Mark value_mark = entry->value.Mark();
  const bool usable = !entry->value.IsNull() && !value_mark.is_null();
  return Field{entry->value, path, usable ? value_mark : entry->key_mark};
}

Field Section::require(std::string_view key, std::string_view hint) const {
  Field result = field(key);
  if (result.present() || !is_map_) {
    return result;
  }
  if (std::find(suggested_.begin(), suggested_.end(), key) != suggested_.end()) {
    return result;
  }
  const bool given_empty = find(key) != nullptr;
  ctx_.diag.add(result.mark, result.path,
                (given_empty ? "key '" + std::string(key) + "' has no value; "
                             : "missing required key '" + std::string(key) + "'; ") +
                    std::string(hint));
  return result;
}

}  // namespace mqtls::config

#include "config/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "config/env_expand.h"

namespace mqtls::config {
namespace {

// Optimal string alignment distance: edits are insert, delete, substitute, swap neighbours.
std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string joined(std::span<const std::string_view> names) {
  std::string out;
  for (auto name : names) {
    out += (out.empty() ? "" : ", ") + std::string(name);
  }
  return out;
}

// Leading decimal digits and the rest; nullopt if there are no digits or they overflow.
std::optional<std::pair<unsigned long long, std::string_view>> splitNumber(std::string_view text) {
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) {
    return std::nullopt;
  }
  return std::make_pair(value, text.substr(static_cast<std::size_t>(end - text.data())));
}

struct Unit {
  std::string_view suffix;
  unsigned long long factor;
};

// number * factor of the matching unit, saturated at ULLONG_MAX; nullopt on a bad format.
std::optional<unsigned long long> parseWithUnit(std::string_view text,
                                                std::initializer_list<Unit> units) {
  auto split = splitNumber(text);
  if (!split) {
    return std::nullopt;
  }
  for (const Unit& unit : units) {
    if (split->second == unit.suffix) {
      constexpr auto kMax = std::numeric_limits<unsigned long long>::max();
      return split->first > kMax / unit.factor ? kMax : split->first * unit.factor;
    }
  }
  return std::nullopt;
}

std::string formatDuration(Duration value) {
  const long long ms = value.count();
  if (ms % 3'600'000 == 0) {
    return std::to_string(ms / 3'600'000) + "h";
  }
  if (ms % 60'000 == 0) {
    return std::to_string(ms / 60'000) + "m";
  }
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + "ms";
}

}  // namespace

std::string childPath(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}

std::string_view closestMatch(std::string_view word, std::span<const std::string_view> candidates) {
  const std::size_t allowed = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  std::string_view best;
  std::size_t best_distance = allowed + 1;
  for (auto candidate : candidates) {
    const std::size_t distance = editDistance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string suggestion(std::string_view word, std::span<const std::string_view> candidates) {
  const std::string_view best = closestMatch(word, candidates);
  return best.empty() ? std::string() : " (did you mean '" + std::string(best) + "'?)";
}

std::string describe(const YAML::Node& node) {
  if (node.IsMap()) {
    return "a map";
  }
  if (node.IsSequence()) {
    return "a sequence";
  }
  if (node.IsScalar()) {
    std::string text = node.Scalar();
    return "'" + (text.size() > 40 ? text.substr(0, 40) + "..." : text) + "'";
  }
  return "nothing";
}

std::optional<std::string> readScalar(Context& ctx, const Field& field, std::string_view what) {
  if (!field.present()) {
    return std::nullopt;
  }
  if (!field.node.IsScalar()) {
    ctx.diag.add(field.mark, field.path,
                 "expected " + std::string(what) + ", got " + describe(field.node) +
                     "; write a single value after the key");
    return std::nullopt;
  }
  auto expanded = expandEnv(field.node.Scalar());
  if (!expanded) {
    ctx.diag.add(field.mark, field.path, expanded.error().message);
    return std::nullopt;
  }
  return std::move(expanded).value();
}

std::optional<std::string> readString(Context& ctx, const Field& field) {
  return readScalar(ctx, field, "a string");
}

void recordPosition(Context& ctx, const std::string& key, const Field& field) {
  if (field.mark.is_null() || field.mark.line < 0 || field.mark.column < 0) {
    return;
  }
  ctx.positions[key] = SettingPosition{field.mark.line + 1, field.mark.column + 1, field.path};
}

std::optional<std::string> readPath(Context& ctx, const Field& field) {
  auto text = readScalar(ctx, field, "a file path");
  if (!text) {
    return std::nullopt;
  }
  if (text->empty()) {
    ctx.diag.add(field.mark, field.path, "the file path is empty; give the path of a file");
    return std::nullopt;
  }
  std::filesystem::path path(*text);
  return path.is_absolute() ? *text : (ctx.base_dir / path).string();
}

std::optional<long long> readInteger(Context& ctx, const Field& field, long long min,
                                     long long max) {
  auto text = readScalar(ctx, field, "an integer");
  if (!text) {
    return std::nullopt;
  }
  const std::string range =
      "an integer between " + std::to_string(min) + " and " + std::to_string(max);
  long long value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && end == text->data() + text->size() && (value < min || value > max))) {
    ctx.diag.add(field.mark, field.path, "'" + *text + "' is out of range; use " + range);
    return std::nullopt;
  }
  if (ec != std::errc() || end != text->data() + text->size()) {
    ctx.diag.add(field.mark, field.path, "expected an integer, got '" + *text + "'; use " + range);
    return std::nullopt;
  }
  return value;
}

std::optional<Duration> readDuration(Context& ctx, const Field& field, Duration min, Duration max) {
  auto text = readScalar(ctx, field, "a duration");
  if (!text) {
    return std::nullopt;
  }
  auto ms =
      parseWithUnit(*text, {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}});
  if (!ms) {
    ctx.diag.add(field.mark, field.path,
                 "expected a duration, got '" + *text +
                     "'; use a number with unit ms, s, m or h (e.g. 500ms, 10s, 2m; a bare "
                     "number means seconds)");
    return std::nullopt;
  }
  const auto max_ms = static_cast<unsigned long long>(max.count());
  if (*ms < static_cast<unsigned long long>(min.count()) || *ms > max_ms) {
    ctx.diag.add(field.mark, field.path,
                 "duration '" + *text + "' is out of range; use a value between " +
                     formatDuration(min) + " and " + formatDuration(max));
    return std::nullopt;
  }
  return Duration(static_cast<Duration::rep>(*ms));
}

std::optional<std::size_t> readSize(Context& ctx, const Field& field, std::size_t min,
                                    std::size_t max) {
  auto text = readScalar(ctx, field, "a size");
  if (!text) {
    return std::nullopt;
  }
  auto bytes = parseWithUnit(*text, {{"", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}});
  if (!bytes) {
    ctx.diag.add(field.mark, field.path,
                 "expected a size, got '" + *text +
                     "'; use a number of bytes, optionally with suffix KiB or MiB (e.g. 64KiB)");
    return std::nullopt;
  }
  if (*bytes < min || *bytes > max) {
    ctx.diag.add(field.mark, field.path,
                 "size '" + *text + "' is out of range; use between " + std::to_string(min) +
                     " and " + std::to_string(max) + " bytes");
    return std::nullopt;
  }
  return static_cast<std::size_t>(*bytes);
}

std::optional<std::size_t> readChoice(Context& ctx, const Field& field,
                                      std::span<const std::string_view> names) {
  auto text = readScalar(ctx, field, "one of: " + joined(names));
  if (!text) {
    return std::nullopt;
  }
  auto it = std::find(names.begin(), names.end(), *text);
  if (it == names.end()) {
    ctx.diag.add(field.mark, field.path,
                 "unknown value '" + *text + "'" + suggestion(*text, names) +
                     "; use one of: " + joined(names));
    return std::nullopt;
  }
  return static_cast<std::size_t>(it - names.begin());
}

std::vector<Field> readList(Context& ctx, const Field& field) {
  std::vector<Field> items;
  if (!field.present()) {
    return items;
  }
  if (field.node.IsScalar()) {
    items.push_back(field);
  } else if (field.node.IsSequence()) {
    for (std::size_t i = 0; i < field.node.size(); ++i) {
      const YAML::Node item = field.node[i];
      const std::string path = field.path + "[" + std::to_string(i) + "]";
      if (item.IsNull()) {
        ctx.diag.add(item.Mark().is_null() ? field.mark : item.Mark(), path,
                     "empty list item; remove it or give a value");
        continue;
      }
      items.push_back(Field{item, path, item.Mark()});
    }
  } else {
    ctx.diag.add(field.mark, field.path,
                 "expected a value or a list of values, got " + describe(field.node) +
                     "; write a single value or [a, b]");
  }
  return items;
}

}  // namespace mqtls::config

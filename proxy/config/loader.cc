// The load pipeline: read the file, parse it with yaml-cpp, walk it into the model (expanding
// ${VAR} per scalar value, so positions stay those of the file), check it, and return either
// the Config or every error found, sorted by position.
#include "config/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include <yaml-cpp/yaml.h>

#include "config/sections.h"

namespace mqtls::config {
namespace {

namespace fs = std::filesystem;

Config readRoot(Context& ctx, const YAML::Node& root) {
  const YAML::Mark start = root.Mark().is_null() ? YAML::Mark() : root.Mark();
  Section top(ctx, Field{root, "", start},
              {"workers", "worker_scheduling", "log", "metrics", "admin", "listeners", "upstream",
               "limits", "identity"});
  Config config;
  readWorkers(ctx, top.field("workers"), config.workers);
  readEnum<WorkerScheduling>(
      ctx, top.field("worker_scheduling"),
      {{"batch", WorkerScheduling::Batch}, {"normal", WorkerScheduling::Normal}},
      config.worker_scheduling);
  readLogging(ctx, top.field("log"), config.log);
  readMetrics(ctx, top.field("metrics"), config.metrics);
  readAdmin(ctx, top.field("admin"), config.metrics, config.admin);
  readListeners(ctx, top.require("listeners", "add a 'listeners' list with at least one listener"),
                config.listeners);
  readUpstream(ctx, top.field("upstream"), config.upstream);
  readLimits(ctx, top.field("limits"), config.limits);
  readIdentity(ctx, top.field("identity"), config.identity);
  return config;
}

// Parses `text` (one YAML document) and reads it; all failures end up in ctx.diag.
std::optional<Config> parseAndRead(Context& ctx, const std::string& text) {
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(text);
    if (documents.size() > 1) {
      ctx.diag.add(documents[1].Mark(), "",
                   "a second YAML document starts here; keep the whole configuration in one "
                   "document (remove the '---' line)");
    }
    return readRoot(ctx, documents.empty() ? YAML::Node() : documents.front());
  } catch (const YAML::ParserException& e) {
    ctx.diag.add(e.mark, "",
                 "YAML syntax error: " + e.msg + "; check indentation, quoting and ':' here");
  } catch (const YAML::Exception& e) {
    ctx.diag.add(e.mark, "", "cannot process the YAML: " + e.msg + "; check the file");
  } catch (const std::exception& e) {
    ctx.diag.add(YAML::Mark::null_mark(), "",
                 std::string("cannot process the configuration: ") + e.what());
  }
  return std::nullopt;
}

fs::path absoluteDir(const fs::path& dir) {
  std::error_code ec;
  fs::path absolute = fs::absolute(dir.empty() ? fs::path(".") : dir, ec);
  return ec ? dir : absolute;
}

// A result holding one unpositioned error about the file itself.
LoadResult fileError(const std::string& path, const std::string& message) {
  LoadResult result;
  result.source_name = path;
  result.addError(SettingPosition{}, message);
  return result;
}

}  // namespace

LoadResult loadConfigFile(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return fileError(path, "is a directory, not a configuration file; give the YAML file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fileError(path, std::string("cannot open the configuration file (") +
                               std::strerror(errno) + "); check the path and its permissions");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return fileError(path, "cannot read the configuration file; check the file");
  }
  return loadConfigText(text.str(), path, fs::path(path).parent_path().string());
}

LoadResult loadConfigText(const std::string& text, const std::string& source_name,
                          const std::string& base_dir) {
  Context ctx{Diagnostics(source_name), absoluteDir(base_dir), {}};
  std::optional<Config> config = parseAndRead(ctx, text);
  LoadResult result;
  result.source_name = source_name;
  result.positions = std::move(ctx.positions);
  if (config) {
    config->source_path = source_name;
    config->positions = result.positions;
    result.read = *config;
  }
  for (auto& entry : ctx.diag.sortedEntries()) {
    result.errors.push_back(std::move(entry.text));
    result.error_positions.emplace_back(entry.line + 1, entry.column + 1);
  }
  if (result.errors.empty() && !config) {
    result.errors.push_back(source_name + ": the configuration could not be loaded");
    result.error_positions.emplace_back(0, 0);
  }
  if (result.errors.empty()) {
    result.config = std::move(config);
  }
  return result;
}

namespace {

// Inserts `text` after every entry positioned at or before (line, column), unpositioned first.
void insertInOrder(std::vector<std::string>& texts, std::vector<std::pair<int, int>>& positions,
                   const SettingPosition& at, const std::string& source,
                   const std::string& message) {
  std::string text = source;
  if (at.line > 0) {
    text += ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
  }
  text += ": " + (at.path.empty() ? "" : at.path + ": ") + message;
  const std::pair<int, int> key{at.line, at.column};
  auto it = std::upper_bound(positions.begin(), positions.end(), key);
  const auto index = it - positions.begin();
  positions.insert(it, key);
  texts.insert(texts.begin() + index, std::move(text));
}

}  // namespace

void LoadResult::addError(const SettingPosition& at, const std::string& message) {
  insertInOrder(errors, error_positions, at, source_name, message);
  config.reset();
}

void LoadResult::addWarning(const SettingPosition& at, const std::string& message) {
  insertInOrder(warnings, warning_positions, at, source_name, message);
}

}  // namespace mqtls::config

// The load pipeline: read the file, parse it with yaml-cpp, walk it into the model (expanding
// ${VAR} per scalar value, so positions stay those of the file), check it, and return either
// the Config or every error found, sorted by position.
#include "config/loader.h"

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
              {"workers", "log", "metrics", "listeners", "upstream", "limits", "identity"});
  Config config;
  readWorkers(ctx, top.field("workers"), config.workers);
  readLogging(ctx, top.field("log"), config.log);
  readMetrics(ctx, top.field("metrics"), config.metrics);
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

}  // namespace

LoadResult loadConfigFile(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return LoadResult{std::nullopt,
                      {path + ": is a directory, not a configuration file; give the YAML file"}};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return LoadResult{std::nullopt,
                      {path + ": cannot open the configuration file (" + std::strerror(errno) +
                       "); check the path and its permissions"}};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return LoadResult{std::nullopt,
                      {path + ": cannot read the configuration file; check the file"}};
  }
  return loadConfigText(text.str(), path, fs::path(path).parent_path().string());
}

LoadResult loadConfigText(const std::string& text, const std::string& source_name,
                          const std::string& base_dir) {
  Context ctx{Diagnostics(source_name), absoluteDir(base_dir)};
  std::optional<Config> config = parseAndRead(ctx, text);
  LoadResult result;
  if (!ctx.diag.empty() || !config) {
    result.errors = ctx.diag.sorted();
    if (result.errors.empty()) {
      result.errors.push_back(source_name + ": the configuration could not be loaded");
    }
    return result;
  }
  config->source_path = source_name;
  result.config = std::move(config);
  return result;
}

}  // namespace mqtls::config

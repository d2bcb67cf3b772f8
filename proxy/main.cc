// mqtls: command line -> configuration -> server. Exit codes: 0 ok, 1 runtime failure,
// 2 bad usage or invalid configuration.
#include <event2/thread.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "net/server.h"
#include "ops/admin_server.h"
#include "ops/logging.h"
#include "ops/metrics.h"
#include "startup_check.h"
#include "util/allocator.h"
#include "util/version.h"

namespace {

constexpr const char* kUsage =
    "usage: mqtls --config FILE        run the proxy\n"
    "       mqtls --check --config FILE  validate the configuration and exit\n"
    "       mqtls --version\n";

struct Options {
  std::string config_path;
  bool check = false;
};

// Parses argv; returns an exit code to stop with, or -1 to continue.
int parseArguments(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version" || arg == "-V") {
      std::printf("mqtls %s (%s, allocator %s)\n", mqtls::kVersion,
                  OpenSSL_version(OPENSSL_VERSION), mqtls::allocatorInUse());
      return 0;
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--check") {
      options.check = true;
    } else if ((arg == "--config" || arg == "-c") && i + 1 < argc) {
      options.config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      options.config_path = arg.substr(std::strlen("--config="));
    } else {
      std::fprintf(stderr, "mqtls: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (options.config_path.empty()) {
    std::fprintf(stderr, "mqtls: --config FILE is required\n%s", kUsage);
    return 2;
  }
  return -1;
}

// The admin listener when admin.listen (or metrics.listen) is set, else null.
mqtls::Result<std::unique_ptr<mqtls::ops::AdminServer>> startAdmin(
    const mqtls::config::Config& config, mqtls::ops::Metrics& metrics,
    mqtls::net::Server& actions) {
  const mqtls::config::Admin& admin = config.admin;
  if (admin.listen.empty()) {
    return std::unique_ptr<mqtls::ops::AdminServer>();
  }
  mqtls::ops::AdminServer::Settings settings;
  settings.listen = admin.listen;
  settings.allow_mutations = admin.allow_mutations;
  settings.probe_always = admin.broker_check_always;
  settings.upstream = config.upstream;
  if (admin.tls) {
    // Each HTTPS connection takes the context in force when it is accepted.
    settings.tls_context = [&actions]() -> std::shared_ptr<SSL_CTX> {
      mqtls::tls::TlsContextPtr context = actions.adminContext();
      return context ? std::shared_ptr<SSL_CTX>(context, context->raw()) : nullptr;
    };
  }
  auto server = mqtls::ops::AdminServer::start(settings, metrics, actions);
  if (!server) {
    return server.error();
  }
  auto host = mqtls::ops::splitListenAddress(admin.listen);
  if (host && !mqtls::ops::isLoopbackHost(host->first) && admin.allow_mutations) {
    spdlog::warn(
        "admin listener on {} is reachable beyond this host and allows changes "
        "(reload, closing connections, log level); set admin.allow_mutations: false "
        "or listen on a loopback address",
        admin.listen);
  }
  const char* scheme = !admin.tls ? "http"
                       : admin.tls->client_auth == mqtls::config::ClientAuth::Required
                           ? "https, client certificates required"
                           : "https";
  spdlog::info("admin listener on {} ({}, changes {})", admin.listen, scheme,
               admin.allow_mutations ? "allowed" : "refused");
  return server;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (int code = parseArguments(argc, argv, options); code >= 0) {
    return code;
  }
  // The same complete check (YAML and TLS material) for --check and for a start.
  mqtls::startup::CheckedConfig checked = mqtls::startup::checkConfigFile(options.config_path);
  const mqtls::config::LoadResult& loaded = checked.loaded;
  if (!loaded.ok()) {
    for (const auto& line : loaded.errors) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    for (const auto& line : loaded.warnings) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fprintf(stderr, "mqtls: %zu configuration error(s) in %s\n", loaded.errors.size(),
                 options.config_path.c_str());
    return 2;
  }
  const mqtls::config::Config& config = *loaded.config;
  if (options.check) {
    for (const auto& line : loaded.warnings) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::printf("%s: configuration ok (%zu listener(s))%s\n", options.config_path.c_str(),
                config.listeners.size(), loaded.warnings.empty() ? "" : " with the warnings above");
    return 0;
  }
  evthread_use_pthreads();
  mqtls::ops::setupLogging(config.log);
  spdlog::info("mqtls {} starting with {} ({}, allocator {})", mqtls::kVersion, options.config_path,
               OpenSSL_version(OPENSSL_VERSION), mqtls::allocatorInUse());
  for (const auto& line : loaded.warnings) {
    spdlog::warn("{}", line);
  }
  mqtls::ops::Metrics metrics;
  metrics.countTraffic(!config.admin.listen.empty());  // nobody could read the counts otherwise
  // The contexts the check built are the ones worker 0 serves; the server builds those of the
  // further workers, each in its own OpenSSL library context.
  auto server = mqtls::net::Server::create(config, std::move(checked.contexts),
                                           std::move(checked.admin_context), metrics);
  if (!server) {
    spdlog::critical("{}", server.error().message);
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a peer gone mid-answer is an error return, not a signal
  auto admin = startAdmin(config, metrics, **server);
  if (!admin) {
    spdlog::critical("{}", admin.error().message);
    return 1;
  }
  int code = (*server)->run();
  if (*admin) {
    (*admin)->stop();  // answers /readyz "draining" until the workers are done
  }
  return code;
}

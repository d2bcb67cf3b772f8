#include "net/reloader.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "config/loader.h"
#include "tls/material_facts.h"

namespace mqtls::net {

namespace {

// SHA-256 over every file's path and bytes: equal digests mean the context would be built from
// the same material. An unreadable file contributes a marker, so it differs from any content.
// The file's bytes, or a marker when it cannot be read (missing, unreadable, a directory: the
// stream then fails while reading, which libstdc++ reports by throwing). Never throws.
std::string fileBytesOrMarker(const std::string& file) {
  const std::string unreadable = "\1unreadable";
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return unreadable;
  }
  try {
    return std::string(std::istreambuf_iterator<char>(in), {});
  } catch (const std::exception&) {
    return unreadable;
  }
}

std::string filesDigest(const config::TlsSettings& settings) {
  std::string all;
  for (const auto& file : tls::contextFiles(settings)) {
    all += file + '\0';
    all += fileBytesOrMarker(file);
    all += '\0';
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(all.data(), all.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
    return all;  // no digest available: compare the bytes themselves
  }
  return std::string(reinterpret_cast<char*>(digest), size);
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "'" : ", '") + item + "'";
  }
  return out;
}

}  // namespace

void publishExpiries(ops::Metrics& metrics, const std::string& listener,
                     const config::TlsSettings& settings) {
  std::vector<ops::CertificateExpiry> certificates;
  std::vector<ops::CrlExpiry> crls;
  for (const auto& scope : tls::materialFacts(listener, settings)) {
    for (const auto& c : scope.certificates) {
      certificates.push_back({scope.scope, c.role, c.subject, c.not_after});
    }
    for (const auto& c : scope.crls) {
      crls.push_back({scope.scope, c.issuer, c.next_update});
    }
  }
  metrics.setExpiries(listener, certificates, crls);
}

std::vector<std::string> restartOnlyChanges(const config::Config& running,
                                            const config::Config& next) {
  std::vector<std::string> changed;
  auto check = [&changed](std::string key, bool same) {
    if (!same) {
      changed.push_back(std::move(key));
    }
  };
  check("workers", running.workers == next.workers);
  check("worker_scheduling", running.worker_scheduling == next.worker_scheduling);
  check("log.level", running.log.level == next.log.level);
  check("log.format", running.log.format == next.log.format);
  check("metrics.listen", running.metrics.listen == next.metrics.listen);
  check("admin.listen", running.admin.listen == next.admin.listen);
  check("admin.allow_mutations", running.admin.allow_mutations == next.admin.allow_mutations);
  check("admin.broker_check", running.admin.broker_check_always == next.admin.broker_check_always);
  check("admin.tls (on or off)", running.admin.tls.has_value() == next.admin.tls.has_value());
  if (running.admin.tls && next.admin.tls) {
    check("admin.tls.client_auth (client certificates required or not)",
          running.admin.tls->client_auth == next.admin.tls->client_auth);
  }
  check("listeners (count)", running.listeners.size() == next.listeners.size());
  for (std::size_t i = 0; i < running.listeners.size() && i < next.listeners.size(); ++i) {
    const auto &a = running.listeners[i], &b = next.listeners[i];
    const std::string at = "listeners[" + std::to_string(i) + "].";
    check(at + "name", a.name == b.name);
    check(at + "bind", a.bind_address == b.bind_address);
    check(at + "port", a.port == b.port);
  }
  const auto &u = running.upstream, &v = next.upstream;
  check("upstream.host", u.host == v.host);
  check("upstream.port", u.port == v.port);
  check("upstream.unix_socket", u.unix_socket == v.unix_socket);
  check("upstream.connect_timeout", u.connect_timeout == v.connect_timeout);
  const auto &l = running.limits, &m = next.limits;
  check("limits.handshake_timeout", l.handshake_timeout == m.handshake_timeout);
  check("limits.connect_timeout", l.connect_timeout == m.connect_timeout);
  check("limits.max_connect_size", l.max_connect_size == m.max_connect_size);
  check("limits.max_connections", l.max_connections == m.max_connections);
  check("limits.buffer_limit", l.buffer_limit == m.buffer_limit);
  check("limits.drain_timeout", l.drain_timeout == m.drain_timeout);
  check("limits.admission_timeout", l.admission_timeout == m.admission_timeout);
  check("limits.max_rewritten_packet", l.max_rewritten_packet == m.max_rewritten_packet);
  check("limits.packet_framing", l.frame_client_packets == m.frame_client_packets);
  const auto &p = running.identity, &q = next.identity;
  check("identity.username_from", p.username_from == q.username_from);
  check("identity.username", p.username == q.username);
  check("identity.password", p.password == q.password);
  check("identity.client_id", p.client_id == q.client_id);
  check("identity.client_id_separator", p.client_id_separator == q.client_id_separator);
  check("identity.user_properties", p.user_properties == q.user_properties);
  check("identity.publish_properties", p.publish_properties == q.publish_properties);
  check("identity.anonymous", p.anonymous == q.anonymous);
  return changed;
}

Reloader::Fd::~Fd() {
  reset();
}

void Reloader::Fd::reset(int fd) {
  if (fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = fd;
}

bool ReloadResult::ok() const {
  return errors.empty() && std::none_of(listeners.begin(), listeners.end(), [](const auto& l) {
           return l.outcome == ListenerReload::Outcome::Failed;
         });
}

void Debouncer::notify(Clock::time_point now) {
  last_ = now;
}

std::optional<Debouncer::Clock::duration> Debouncer::remaining(Clock::time_point now) const {
  if (!last_) {
    return std::nullopt;
  }
  return std::max(Clock::duration::zero(), *last_ + window_ - now);
}

bool Debouncer::fire(Clock::time_point now) {
  if (!last_ || now < *last_ + window_) {
    return false;
  }
  last_.reset();
  return true;
}

Reloader::Reloader(const config::Config& running, std::vector<tls::ContextStore*> stores,
                   ops::Metrics& metrics, Options options)
    : running_(running), metrics_(metrics), options_(options), positions_(running.positions) {
  for (std::size_t i = 0; i < stores.size() && i < running.listeners.size(); ++i) {
    const auto& listener = running.listeners[i];
    states_.push_back({i, listener.name, "listeners[" + std::to_string(i) + "].tls", stores[i],
                       listener.tls, filesDigest(listener.tls)});
  }
}

void Reloader::addAdmin(tls::ContextStore* store) {
  if (store == nullptr || !running_.admin.tls) {
    return;
  }
  std::lock_guard lock(mutex_);
  const config::TlsSettings& settings = *running_.admin.tls;
  states_.push_back({kAdmin, "admin", "admin.tls", store, settings, filesDigest(settings)});
  watch_dirty_ = true;
}

Reloader::~Reloader() {
  stop();
}

std::uint64_t Reloader::completed() const {
  std::lock_guard lock(mutex_);
  return completed_;
}

// Builds one listener's context from its current settings; see reloadFiles for `force` and
// `allow_waiting`. Called with mutex_ held.
ListenerReload Reloader::rebuildListener(ListenerState& state, bool force, bool allow_waiting) {
  ListenerReload out;
  out.listener = state.name;
  out.files = tls::contextFiles(state.settings);
  if (!force && filesDigest(state.settings) == state.attempted) {
    out.outcome = ListenerReload::Outcome::Unchanged;
    return out;
  }
  if (allow_waiting && tls::keyAndCertificateDisagree(state.settings)) {
    out.outcome = ListenerReload::Outcome::Waiting;  // not an attempt: retried once settled
    return out;
  }
  // Digested after the check: a write that completed the pair while it ran is part of this
  // attempt, so its own event finds the files unchanged instead of reloading a second time. (A
  // write landing between this digest and the build's reads still reloads once more: the
  // files did change.)
  state.attempted = filesDigest(state.settings);
  tls::BuildReport report;
  const bool built = state.store->rebuild(state.settings, report);
  for (const auto& problem : report.errors) {
    out.errors.push_back(placed(state, problem));
  }
  for (const auto& problem : report.warnings) {
    out.warnings.push_back(placed(state, problem));
  }
  out.outcome = built ? ListenerReload::Outcome::Reloaded : ListenerReload::Outcome::Failed;
  if (built) {
    publishExpiries(metrics_, state.name, state.settings);
  }
  return out;
}

std::string Reloader::placed(const ListenerState& state, const tls::SettingProblem& problem) const {
  const std::string path = state.path + "." + problem.key;
  auto at = positions_.find(path);
  if (at == positions_.end() || at->second.line == 0) {
    return state.path + "." + problem.key + ": " + problem.message;
  }
  return running_.source_path + ":" + std::to_string(at->second.line) + ":" +
         std::to_string(at->second.column) + ": " + at->second.path + ": " + problem.message;
}

// Logs the result and counts it: a reload that built or failed to build anything counts once,
// ok only if nothing failed. Called with mutex_ held.
void Reloader::finish(ReloadResult& result) {
  using Outcome = ListenerReload::Outcome;
  const std::string& trigger = result.trigger;
  for (const auto& line : result.errors) {
    spdlog::error("TLS reload ({}): {}", trigger, line);
  }
  for (const auto& line : result.warnings) {
    spdlog::warn("TLS reload ({}): {}", trigger, line);
  }
  bool attempted = !result.errors.empty();
  for (const auto& listener : result.listeners) {
    for (const auto& line : listener.warnings) {
      spdlog::warn("TLS reload ({}): listener '{}': warning: {}", trigger, listener.listener, line);
    }
    switch (listener.outcome) {
      case Outcome::Reloaded:
        attempted = true;
        spdlog::info("TLS reload ({}): listener '{}' reloaded from {}", trigger, listener.listener,
                     joined(listener.files));
        break;
      case Outcome::Failed:
        attempted = true;
        for (const auto& line : listener.errors) {
          spdlog::error("TLS reload ({}) failed: listener '{}' keeps its previous context: {}",
                        trigger, listener.listener, line);
        }
        break;
      case Outcome::Waiting:
        spdlog::info(
            "TLS reload ({}): listener '{}': key and certificate do not match yet; "
            "waiting for the rest of the rotation",
            trigger, listener.listener);
        break;
      case Outcome::Skipped:
      case Outcome::Unchanged:
        spdlog::debug("TLS reload ({}): listener '{}' unchanged", trigger, listener.listener);
        break;
    }
  }
  if (attempted) {
    metrics_.tlsReloaded(result.ok());
  }
  ++completed_;
}

ReloadResult Reloader::reloadFiles(std::string_view trigger, bool force, bool allow_waiting) {
  std::lock_guard lock(mutex_);
  ReloadResult result;
  result.trigger = std::string(trigger);
  for (auto& state : states_) {
    result.listeners.push_back(rebuildListener(state, force, allow_waiting));
  }
  finish(result);
  return result;
}

ListenerReload Reloader::applyListener(ListenerState& state, const config::Config& next) {
  const config::TlsSettings* settings = nullptr;
  if (state.index == kAdmin) {
    // Whether a client certificate is required is restart-only (restartOnlyChanges says so).
    if (next.admin.tls && next.admin.listen == running_.admin.listen &&
        next.admin.tls->client_auth == running_.admin.tls->client_auth) {
      settings = &*next.admin.tls;
    }
  } else if (state.index < next.listeners.size()) {
    const auto &now = running_.listeners[state.index], &then = next.listeners[state.index];
    if (then.name == now.name && then.bind_address == now.bind_address && then.port == now.port) {
      settings = &then.tls;
    }
  }
  if (settings == nullptr) {
    return {
        state.name, tls::contextFiles(state.settings), ListenerReload::Outcome::Skipped, {}, {}};
  }
  state.settings = *settings;
  return rebuildListener(state, true, false);
}

ReloadResult Reloader::reload(std::string_view trigger) {
  config::LoadResult loaded = config::loadConfigFile(running_.source_path);
  std::lock_guard lock(mutex_);
  ReloadResult result;
  result.trigger = std::string(trigger);
  if (!loaded.ok()) {
    result.errors = loaded.errors;
    result.errors.push_back(running_.source_path +
                            ": not applied; the running configuration and TLS contexts stay in "
                            "force until the file is fixed and reloaded again");
    finish(result);
    return result;
  }
  const config::Config& next = *loaded.config;
  result.warnings = loaded.warnings;
  for (const auto& key : restartOnlyChanges(running_, next)) {
    result.warnings.push_back("'" + key + "' changed in " + running_.source_path +
                              " but takes effect only after a restart; the running value "
                              "stays in force");
  }
  positions_ = next.positions;
  for (auto& state : states_) {
    result.listeners.push_back(applyListener(state, next));
  }
  watch_dirty_ = true;
  wake();
  finish(result);
  return result;
}

}  // namespace mqtls::net

// The reloader's watching thread: inotify on the directories of every listener's files, a
// debouncer over their events, and the wait for a key and certificate to agree.
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "net/reloader.h"

namespace mqtls::net {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kResyncInterval = std::chrono::seconds(1);
constexpr std::uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE |
                                     IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |
                                     IN_MOVE_SELF;

// The name standing for "every entry": a directory that is itself one of the files (a CRL
// directory), where any entry added, replaced or removed changes what the context is built from.
constexpr std::string_view kAnyName = "";

// A name in a watched directory that can change a watched file: the file itself, a Kubernetes
// AtomicWriter entry ("..data", "..data_tmp", "..<timestamp>") its symlink goes through, or any
// name in a directory watched for all its entries.
bool relevantName(const std::vector<std::string>& names, std::string_view name) {
  return name.rfind("..", 0) == 0 || std::find(names.begin(), names.end(), name) != names.end() ||
         std::find(names.begin(), names.end(), kAnyName) != names.end();
}

// Milliseconds until `at` for poll(), rounded up, at least 0.
int msUntil(Clock::time_point at, Clock::time_point now) {
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(at - now).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
}

}  // namespace

// Watches the directory of every file of every listener (the directory, not the file: renames
// and symlink swaps replace the file's inode), and every directory of contextDirectories(). Returns
// false if a directory could not be watched (it is retried). Runs on the reloader thread, or in
// start() before it exists.
bool Reloader::syncWatches() {
  std::map<std::string, std::vector<std::string>> wanted;  // directory -> names
  {
    std::lock_guard lock(mutex_);
    for (const auto& state : states_) {
      for (const auto& file : tls::contextFiles(state.settings)) {
        std::filesystem::path path = std::filesystem::absolute(file).lexically_normal();
        wanted[path.parent_path().string()].push_back(path.filename().string());
      }
      for (const auto& dir : tls::contextDirectories(state.settings)) {
        std::filesystem::path path = std::filesystem::absolute(dir).lexically_normal();
        if (path.filename().empty()) {
          path = path.parent_path();  // "crl.d/" names "crl.d"
        }
        wanted[path.string()].emplace_back(kAnyName);                             // its entries
        wanted[path.parent_path().string()].push_back(path.filename().string());  // itself
      }
    }
  }
  std::vector<Watch> next;
  bool all = true;
  for (auto& [dir, names] : wanted) {
    int wd = inotify_add_watch(inotify_.get(), dir.c_str(), kWatchMask);
    if (wd < 0) {
      spdlog::warn("cannot watch '{}' for TLS file changes ({}); retrying, SIGHUP reloads", dir,
                   std::strerror(errno));
      all = false;
      continue;
    }
    auto same = std::find_if(next.begin(), next.end(), [wd](const Watch& w) { return w.wd == wd; });
    if (same == next.end()) {
      next.push_back({wd, names});
    } else {
      same->names.insert(same->names.end(), names.begin(), names.end());
    }
  }
  for (const auto& old : watches_) {
    if (std::none_of(next.begin(), next.end(), [&old](const Watch& w) { return w.wd == old.wd; })) {
      inotify_rm_watch(inotify_.get(), old.wd);
    }
  }
  watches_ = std::move(next);
  return all;
}

// Reads every pending inotify event; true if one of them can change a watched file. A watched
// directory that went away marks the watches for a resync.
bool Reloader::readEvents() {
  alignas(inotify_event) char buffer[16 * 1024];
  bool relevant = false;
  while (true) {
    ssize_t n = ::read(inotify_.get(), buffer, sizeof buffer);
    if (n <= 0) {
      return relevant;  // EAGAIN: drained
    }
    for (char* at = buffer; at < buffer + n;) {
      auto* event = reinterpret_cast<inotify_event*>(at);
      at += sizeof(inotify_event) + event->len;
      if ((event->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW)) != 0) {
        std::lock_guard lock(mutex_);
        watch_dirty_ = true;
        relevant = true;
        continue;
      }
      auto watch = std::find_if(watches_.begin(), watches_.end(),
                                [event](const Watch& w) { return w.wd == event->wd; });
      if (watch != watches_.end() && event->len > 0 && relevantName(watch->names, event->name)) {
        relevant = true;
      }
    }
  }
}

// The thread: waits for events, lets each burst settle, then reloads what changed. A listener
// whose key and certificate disagree is retried (and only then reported) once nothing has
// changed for options_.mismatch_grace.
void Reloader::run() {
  Debouncer debouncer(options_.debounce);
  std::optional<Clock::time_point> settle_until;
  std::optional<Clock::time_point> resync_at;
  while (true) {
    bool dirty = false;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        return;
      }
      std::swap(dirty, watch_dirty_);
    }
    Clock::time_point now = Clock::now();
    if (dirty || (resync_at && now >= *resync_at)) {
      resync_at = syncWatches() ? std::nullopt : std::optional(now + kResyncInterval);
    }
    int timeout = -1;
    std::optional<Clock::time_point> burst_end;
    if (auto left = debouncer.remaining(now)) {
      burst_end = now + *left;
    }
    for (auto at : {burst_end, settle_until, resync_at}) {
      if (at) {
        timeout = timeout < 0 ? msUntil(*at, now) : std::min(timeout, msUntil(*at, now));
      }
    }
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, timeout) > 0) {
      if ((fds[0].revents & POLLIN) != 0 && readEvents()) {
        debouncer.notify(Clock::now());
      }
      std::uint64_t count = 0;
      while ((fds[1].revents & POLLIN) != 0 && ::read(wake_.get(), &count, sizeof count) > 0) {
      }
    }
    now = Clock::now();
    if (debouncer.fire(now)) {
      ReloadResult result = reloadFiles("file change", false, true);
      bool waiting = std::any_of(result.listeners.begin(), result.listeners.end(), [](auto& l) {
        return l.outcome == ListenerReload::Outcome::Waiting;
      });
      settle_until = waiting ? settle_until.value_or(now + options_.mismatch_grace)
                             : std::optional<Clock::time_point>();
    } else if (settle_until && now >= *settle_until && !debouncer.remaining(now)) {
      settle_until.reset();
      reloadFiles("file change", false, false);
    }
  }
}

Status Reloader::start() {
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  wake_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (inotify_.get() < 0 || wake_.get() < 0) {
    std::string reason = std::strerror(errno);
    inotify_.reset();
    wake_.reset();
    return Status::failure("cannot watch the TLS files for changes (" + reason +
                           "); raise fs.inotify.max_user_instances, or reload with SIGHUP");
  }
  {
    std::lock_guard lock(mutex_);
    watch_dirty_ = false;
  }
  syncWatches();  // before returning: a change made right after start is seen
  thread_ = std::thread([this] { run(); });
  return Status::success();
}

void Reloader::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Reloader::wake() {
  if (wake_.get() >= 0) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wake_.get(), &one, sizeof one);
  }
}

}  // namespace mqtls::net

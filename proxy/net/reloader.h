// Reloader: takes certificate, key, CA and CRL rotations without a restart and without refusing
// a handshake. Three triggers end in the same place:
//   - a change on disk of any file a listener's context is built from (tls::contextFiles),
//     watched with inotify on the files' DIRECTORIES, so renames over a file, editors that
//     replace files and a Kubernetes Secret volume's atomic "..data" symlink swap are all seen;
//     events are debounced (a burst ends in one reload once the files have been quiet for the
//     window), and a key that does not match its certificate yet (the gap between the two writes
//     of a rotation) is waited for, not reported, until the state has been settled for a while;
//   - SIGHUP and an admin request: reload(trigger), which also re-reads the configuration file.
// Every reload builds complete new contexts through tls::ContextStore (the same build as the
// start) and publishes them atomically; established connections keep theirs. A failed build
// keeps the last good context, is logged with the file and the reason, and counted
// (mqtls_tls_reloads_total{result="failed"}). Watching runs on the reloader's own thread, never on
// a worker's loop; reloads are serialized whichever thread asks.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/model.h"
#include "ops/metrics.h"
#include "tls/context_store.h"
#include "util/result.h"

namespace mqtls::net {

// The restart-only settings that differ between the running configuration and `next`, as key
// paths ("workers", "worker_scheduling", "listeners (count)", "listeners[0].port",
// "upstream.host", "limits.*", "identity.*", "log.*", "metrics.listen"), in file order. Listener
// TLS settings are not among them: a reload applies those.
std::vector<std::string> restartOnlyChanges(const config::Config& running,
                                            const config::Config& next);

// Sets the certificate and CRL expiry gauges of `listener` from the material `settings` load
// (its SNI sites included), removing those of material it no longer loads.
void publishExpiries(ops::Metrics& metrics, const std::string& listener,
                     const config::TlsSettings& settings);

// What one reload did to one listener.
struct ListenerReload {
  enum class Outcome {
    Reloaded,   // a new context is in force
    Unchanged,  // a file event, but none of its files changed since the last attempt
    Waiting,    // key and certificate do not match yet (mid-rotation): old context kept, no error
    Failed,     // the old context is kept; `errors` says why
    Skipped,    // its address or name changed in the file: restart-only, old settings kept
  };
  std::string listener;            // its name
  std::vector<std::string> files;  // the files its context is built from
  Outcome outcome = Outcome::Unchanged;
  std::vector<std::string> errors;    // "tls.<key>: problem; fix", each naming the file
  std::vector<std::string> warnings;  // e.g. a CRL past its nextUpdate
};

// The answer to one reload request, for the log, the metrics and a future admin endpoint.
struct ReloadResult {
  std::string trigger;                // "SIGHUP", "file change", "admin", ...
  std::vector<std::string> errors;    // the configuration file could not be used: nothing applied
  std::vector<std::string> warnings;  // restart-only keys that changed, loader warnings
  std::vector<ListenerReload> listeners;
  // True when nothing failed (a listener that is waiting or unchanged is not a failure).
  bool ok() const;
};

// Debouncer: decides when a burst of events is over. Pure timing, no clock of its own.
class Debouncer {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Debouncer(Clock::duration window) : window_(window) {}
  // An event arrived at `now`: the burst ends `window` after the last one.
  void notify(Clock::time_point now);
  // How long until the burst is over (zero if it is); nullopt when no event is pending.
  std::optional<Clock::duration> remaining(Clock::time_point now) const;
  // True exactly once per burst, at or after its end; then nothing is pending.
  bool fire(Clock::time_point now);

 private:
  Clock::duration window_;
  std::optional<Clock::time_point> last_;
};

class Reloader {
 public:
  struct Options {
    std::chrono::milliseconds debounce{250};  // quiet time after the last file event
    // How long a key/certificate mismatch may last before it counts as a failed reload.
    std::chrono::milliseconds mismatch_grace{3000};
  };

  // `running` is the configuration the process started with (it must outlive the reloader);
  // stores[i] holds listener i's context. Nothing is watched until start().
  Reloader(const config::Config& running, std::vector<tls::ContextStore*> stores,
           ops::Metrics& metrics, Options options);
  Reloader(const config::Config& running, std::vector<tls::ContextStore*> stores,
           ops::Metrics& metrics)
      : Reloader(running, std::move(stores), metrics, Options{}) {}
  ~Reloader();  // stops watching and joins the thread

  // Also keeps the admin listener's HTTPS context (admin.tls) in `store` up to date, under the
  // name "admin": its files are watched and rebuilt like a listener's, and reload() applies a
  // changed admin.tls. Call before start().
  void addAdmin(tls::ContextStore* store);

  // Starts watching on a thread of its own. Fails (nothing started) if inotify is unavailable.
  Status start();
  // Stops watching and joins the thread; idempotent.
  void stop();

  // SIGHUP / admin: re-reads the configuration file, applies the TLS settings of the existing
  // listeners (new file paths are watched from now on), warns about each changed restart-only
  // key, and rebuilds every listener's context. Callable from any thread; blocks until done.
  ReloadResult reload(std::string_view trigger);
  // Rebuilds the listeners whose files changed since their last attempt (all of them with
  // `force`), without reading the configuration file. With `allow_waiting`, a listener whose
  // key and certificate disagree is left Waiting instead of Failed. Callable from any thread.
  ReloadResult reloadFiles(std::string_view trigger, bool force, bool allow_waiting = false);

  // How many reloads have ended (any trigger, any outcome), for tests and operators.
  std::uint64_t completed() const;

 private:
  // One listener as the reloader sees it: the settings it is built from now (the last loaded
  // configuration's), and a digest of its files at the last build attempt.
  struct ListenerState;
  // "file:line:col: key: message" when the problem's setting has a known position, else
  // "tls.<key>: message". Called with mutex_ held.
  std::string placed(const ListenerState& state, const tls::SettingProblem& problem) const;
  struct ListenerState {
    std::size_t index;  // in the configuration's listeners; kAdmin for the admin listener
    std::string name;
    std::string path;  // of its settings in the file: "listeners[i].tls" or "admin.tls"
    tls::ContextStore* store;
    config::TlsSettings settings;
    std::string attempted;
  };
  // One watched directory and the names in it that matter.
  struct Watch {
    int wd;
    std::vector<std::string> names;
  };
  // Owns a file descriptor (inotify, eventfd); closes it once.
  class Fd {
   public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    void reset(int fd = -1);
    int get() const { return fd_; }

   private:
    int fd_ = -1;
  };

  static constexpr std::size_t kAdmin = static_cast<std::size_t>(-1);
  // Applies `next`'s settings for `state` and rebuilds it; Skipped when its address changed.
  ListenerReload applyListener(ListenerState& state, const config::Config& next);
  ListenerReload rebuildListener(ListenerState& state, bool force, bool allow_waiting);
  void finish(ReloadResult& result);
  void run();
  bool syncWatches();
  bool readEvents();
  void wake();

  const config::Config& running_;
  ops::Metrics& metrics_;
  const Options options_;
  // Where the settings were written (the file last loaded): reload problems name file:line:col.
  config::SettingPositions positions_;
  mutable std::mutex mutex_;  // serializes reloads; guards states_, completed_, watch_dirty_
  std::vector<ListenerState> states_;
  std::uint64_t completed_ = 0;
  bool watch_dirty_ = true;
  bool stopping_ = false;
  Fd inotify_;
  Fd wake_;
  std::vector<Watch> watches_;  // the reloader thread's own
  std::thread thread_;
};

}  // namespace mqtls::net

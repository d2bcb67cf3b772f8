// mqtls-ceiling: what mqtls's own TLS configuration allows one core to do. Loads an mqtls
// configuration exactly as `mqtls` does (startup::checkConfigFile), takes listener 0's context and
// runs the server side of real mutual-TLS handshakes against the load generator's own client
// context (makeClientContext) in this process, over a memory BIO pair: no sockets, no event loop,
// no broker. Only the server side is timed: the thread CPU clock around each call mqtls's client
// connection makes on its SSL (SSL_new, the handshake including TLS 1.3 session tickets, reading
// CONNECT, writing CONNACK, reading DISCONNECT and close_notify, SSL_shutdown, SSL_free).
// Prints one line per scenario:
//   ceiling full-tls13 server_cpu_us=812.3 handshake_us=700.1 after_us=112.2 per_core=1231 ...
// With --threads N, N threads run the scenario at once, each as one of mqtls's workers: thread t
// uses the listener's context of worker slot t (tls::ContextStore with one OpenSSL library
// context per slot, sharing the session store), each with its own client in a library context
// of its own; --one-library builds everything in OpenSSL's default library context instead
// (one context shared by all threads, as mqtls did before). The line then adds threads=N and
// rate= (handshakes per wall-clock second, both sides of every handshake included), so rate at
// N threads over rate at 1 is how the TLS work scales across cores. The threads' measured
// windows start together, after every warm-up.
// Exit codes: 0 all scenarios ran, 1 a scenario failed, 2 bad usage or configuration.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <time.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mqtt_wire.h"
#include "startup_check.h"
#include "tls/context_store.h"
#include "tls/library_contexts.h"
#include "transport.h"

namespace mqtls::bench {
namespace {

constexpr const char* kUsage =
    "usage: mqtls-ceiling --config FILE --cert FILE --key FILE [--ca FILE]\n"
    "                     [--duration SEC] [--scenarios a,b,...] [--threads N] [--one-library]\n"
    "\n"
    "Runs the server side of mutual-TLS handshakes in-process with the TLS context mqtls builds\n"
    "for listener 0 of FILE, and prints the server's CPU per handshake (plus CONNECT, CONNACK,\n"
    "DISCONNECT and close) and the implied handshakes per second on one core. --cert/--key: the\n"
    "client identity; --ca: verify the server's certificate (for 127.0.0.1) too. --threads N:\n"
    "N threads at once, one per worker slot; adds the wall-clock rate of all of them.\n"
    "--one-library: every thread in OpenSSL's default library context, on one TLS context.\n"
    "\n"
    "Scenarios: full-tls13 full-tls12 resume-tls13 resume-tls12 (default: all)\n";

constexpr std::size_t kBioBuffer = 64 * 1024;  // bytes each direction can hold
constexpr int kMaxTurns = 64;                  // handshake round trips before giving up
constexpr int kWarmupHandshakes = 50;

struct CeilingScenario {
  const char* name;
  int version;
  bool resume;
};

constexpr CeilingScenario kScenarios[] = {
    {"full-tls13", TLS1_3_VERSION, false},
    {"full-tls12", TLS1_2_VERSION, false},
    {"resume-tls13", TLS1_3_VERSION, true},
    {"resume-tls12", TLS1_2_VERSION, true},
};

struct CeilingOptions {
  std::string config;
  TlsFiles client;
  double duration = 2;
  int threads = 1;
  bool one_library = false;
  std::vector<CeilingScenario> scenarios;
};

std::string sslError(const char* what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  char text[256] = "no OpenSSL error queued";
  if (code != 0) {
    ERR_error_string_n(code, text, sizeof text);
  }
  return std::string(what) + ": " + text;
}

double threadCpuNs() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

// Adds the thread CPU time of each call made through it to a bucket, less the cost of reading
// the clock itself (measured once, at construction).
class ServerMeter {
 public:
  ServerMeter() { calibrate(); }

  template <typename Call>
  auto time(double& bucket, Call&& call) {
    double start = threadCpuNs();
    auto result = call();
    bucket += threadCpuNs() - start - overhead_;
    return result;
  }

 private:
  void calibrate() {
    constexpr int kSamples = 2000;
    double spent = 0;
    for (int i = 0; i < kSamples; ++i) {
      time(spent, [] { return 0; });
    }
    overhead_ = spent / kSamples;
  }

  double overhead_ = 0;
};

// What the server spent on one connection, in thread CPU nanoseconds.
struct Sample {
  double handshake_ns = 0;  // SSL_new and the handshake, session tickets included
  double after_ns = 0;      // CONNECT, CONNACK, DISCONNECT, close_notify, shutdown, SSL_free
  bool resumed = false;
  std::string tls;
};

struct Totals {
  std::uint64_t handshakes = 0;
  std::uint64_t resumed = 0;
  std::uint64_t sessions = 0;  // sessions (TLS 1.3 tickets) the client received
  double handshake_ns = 0;
  double after_ns = 0;
  double wall_s = 0;  // the measured window, after the warm-up
  std::string tls;

  void add(const Totals& other) {
    handshakes += other.handshakes;
    resumed += other.resumed;
    sessions += other.sessions;
    handshake_ns += other.handshake_ns;
    after_ns += other.after_ns;
    wall_s = std::max(wall_s, other.wall_s);
    tls = other.tls;
  }
};

// Counts the sessions the server hands the client (each TLS 1.3 ticket is one), into the
// std::uint64_t the client context's app data points at.
int countSession(SSL* ssl, SSL_SESSION*) {
  ++*static_cast<std::uint64_t*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  return 0;  // not kept: the caller takes the newest with SSL_get1_session
}

void countSessions(SSL_CTX* client, std::uint64_t& counter) {
  SSL_CTX_set_app_data(client, &counter);
  SSL_CTX_set_session_cache_mode(client, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(client, countSession);
}

bool wouldBlock(SSL* ssl, int rc) {
  int code = SSL_get_error(ssl, rc);
  return code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE;
}

std::string describe(SSL* ssl) {
  std::string text = SSL_get_version(ssl);
  text += "/";
  text += SSL_get_cipher_name(ssl);
  if (int group = SSL_get_negotiated_group(ssl); group != 0) {
    const char* name = SSL_group_to_name(ssl, group);
    text += "/";
    text += name != nullptr ? name : std::to_string(group);
  }
  return text;
}

// One client connection against one server SSL over a BIO pair.
class Exchange {
 public:
  Exchange(const tls::TlsContext& context, SSL_CTX* client_ctx, ServerMeter& meter)
      : meter_(meter) {
    server_.reset(meter_.time(sample_.handshake_ns, [&] { return context.newSsl().release(); }));
    client_.reset(SSL_new(client_ctx));
  }

  // Runs the whole connection; returns an empty string, or what went wrong.
  std::string run(SSL_SESSION* session) {
    BIO* server_bio = nullptr;
    BIO* client_bio = nullptr;
    if (!server_ || !client_ ||
        BIO_new_bio_pair(&server_bio, kBioBuffer, &client_bio, kBioBuffer) != 1) {
      return sslError("setup");
    }
    SSL_set_bio(server_.get(), server_bio, server_bio);
    SSL_set_bio(client_.get(), client_bio, client_bio);
    SSL_set_accept_state(server_.get());
    SSL_set_connect_state(client_.get());
    if (session != nullptr) {
      SSL_set_session(client_.get(), session);
    }
    std::string error = handshake();
    if (error.empty()) {
      error = mqttExchange();
    }
    return error;
  }

  // The client's newest session (for the next resumption), or null.
  SSL_SESSION* clientSession() const { return SSL_get1_session(client_.get()); }

  // Frees the server SSL (timed) and returns what the server spent.
  Sample finish() {
    sample_.resumed = SSL_session_reused(server_.get()) == 1;
    sample_.tls = describe(server_.get());
    meter_.time(sample_.after_ns, [&] {
      server_.reset();
      return 0;
    });
    return sample_;
  }

 private:
  // Steps the client, then the server, until both have finished their handshakes.
  std::string handshake() {
    bool client_done = false;
    bool server_done = false;
    for (int turn = 0; !(client_done && server_done); ++turn) {
      if (turn == kMaxTurns) {
        return "handshake did not finish";
      }
      if (!client_done) {
        int rc = SSL_do_handshake(client_.get());
        client_done = rc == 1;
        if (!client_done && !wouldBlock(client_.get(), rc)) {
          return sslError("client handshake");
        }
      }
      if (!server_done) {
        int rc = meter_.time(sample_.handshake_ns, [&] { return SSL_do_handshake(server_.get()); });
        server_done = rc == 1;
        if (!server_done && !wouldBlock(server_.get(), rc)) {
          return sslError("server handshake");
        }
      }
    }
    return "";
  }

  // Server reads up to `size` bytes (timed); -1 on error, 0 on close_notify.
  int serverRead(std::uint8_t* data, int size) {
    return meter_.time(sample_.after_ns, [&] {
      int n = SSL_read(server_.get(), data, size);
      return n > 0 || SSL_get_error(server_.get(), n) == SSL_ERROR_ZERO_RETURN ? std::max(n, 0)
                                                                               : -1;
    });
  }

  // What mqtls's client side does after the handshake: CONNECT in, CONNACK out, DISCONNECT and
  // close_notify in, close_notify out. The client reads the CONNACK (and the tickets before it).
  std::string mqttExchange() {
    auto connect = encodeConnect("ceiling", 60);
    auto disconnect = encodeDisconnect();
    const std::uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    std::uint8_t buffer[256];
    if (SSL_write(client_.get(), connect.data(), static_cast<int>(connect.size())) <= 0) {
      return sslError("client CONNECT");
    }
    if (serverRead(buffer, sizeof buffer) != static_cast<int>(connect.size())) {
      return sslError("server read of CONNECT");
    }
    if (meter_.time(sample_.after_ns, [&] {
          return SSL_write(server_.get(), connack, sizeof connack);
        }) != static_cast<int>(sizeof connack)) {
      return sslError("server CONNACK");
    }
    if (SSL_read(client_.get(), buffer, sizeof buffer) != static_cast<int>(sizeof connack)) {
      return sslError("client read of CONNACK");
    }
    SSL_write(client_.get(), disconnect.data(), static_cast<int>(disconnect.size()));
    SSL_shutdown(client_.get());
    if (serverRead(buffer, sizeof buffer) != static_cast<int>(disconnect.size()) ||
        serverRead(buffer, sizeof buffer) != 0) {
      return sslError("server read of DISCONNECT and close_notify");
    }
    meter_.time(sample_.after_ns, [&] { return SSL_shutdown(server_.get()); });
    ERR_clear_error();
    return "";
  }

  ServerMeter& meter_;
  Sample sample_;
  SslPtr server_;
  SslPtr client_;
};

// Runs `scenario` for `duration` seconds after a warm-up; false (with `error`) on a failure.
bool runScenario(
    const CeilingScenario& scenario, const tls::TlsContext& context, SSL_CTX* client,
    double duration, Totals& totals, std::string& error,
    const std::function<void()>& warmed = [] {}) {
  ServerMeter meter;
  SslSessionPtr session;
  std::uint64_t sessions = 0;
  countSessions(client, sessions);
  auto start = std::chrono::steady_clock::now();
  auto end = std::chrono::steady_clock::time_point::max();
  for (int done = 0;; ++done) {
    if (done == kWarmupHandshakes) {
      warmed();  // with --threads: every thread's window starts together
      sessions = 0;
      start = std::chrono::steady_clock::now();
      end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(duration));
    }
    if (done >= kWarmupHandshakes && std::chrono::steady_clock::now() >= end) {
      totals.sessions = sessions;
      totals.wall_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return true;
    }
    Exchange exchange(context, client, meter);
    error = exchange.run(scenario.resume ? session.get() : nullptr);
    if (!error.empty()) {
      return false;
    }
    if (scenario.resume) {
      SslSessionPtr next(exchange.clientSession());
      if (next && SSL_SESSION_is_resumable(next.get())) {
        session = std::move(next);
      }
    }
    Sample sample = exchange.finish();
    if (done >= kWarmupHandshakes) {
      totals.handshakes++;
      totals.resumed += sample.resumed ? 1 : 0;
      totals.handshake_ns += sample.handshake_ns;
      totals.after_ns += sample.after_ns;
      totals.tls = sample.tls;
    }
  }
}

void printTotals(const CeilingScenario& scenario, const Totals& totals, int threads) {
  double n = static_cast<double>(totals.handshakes);
  double handshake_us = totals.handshake_ns / n / 1e3;
  double after_us = totals.after_ns / n / 1e3;
  double total_us = handshake_us + after_us;
  std::printf(
      "ceiling %s server_cpu_us=%.1f handshake_us=%.1f after_us=%.1f per_core=%.0f "
      "handshakes=%llu resumed=%.1f%% sessions_sent=%.2f tls=%s",
      scenario.name, total_us, handshake_us, after_us, total_us > 0 ? 1e6 / total_us : 0.0,
      static_cast<unsigned long long>(totals.handshakes), 100.0 * totals.resumed / n,
      static_cast<double>(totals.sessions) / n, totals.tls.c_str());
  if (threads > 1) {
    std::printf(" threads=%d", threads);
  }
  std::printf(" rate=%.0f\n", totals.wall_s > 0 ? n / totals.wall_s : 0.0);
  std::fflush(stdout);
}

// Runs `scenario` on options.threads threads at once, thread t against the server context of
// slot t of `contexts`, each with its own client context (in library context t+1 of
// `client_libraries`); sums what they measured. False (with `error`) if any failed.
bool runThreads(const CeilingScenario& scenario, const CeilingOptions& options,
                const tls::ContextStore& contexts, const tls::LibraryContexts& client_libraries,
                Totals& sum, std::string& error) {
  const auto count = static_cast<std::size_t>(options.threads);
  std::vector<Totals> totals(count);
  std::vector<std::string> errors(count);
  std::vector<std::thread> threads;
  std::barrier warm(static_cast<std::ptrdiff_t>(count));
  for (std::size_t t = 0; t < count; ++t) {
    threads.emplace_back([&, t] {
      bool arrived = false;
      SslCtxPtr client = makeClientContext(options.client, scenario.version, errors[t],
                                           client_libraries.at(t + 1));
      tls::TlsContextPtr context = contexts.current(t);
      const bool ran = client && runScenario(scenario, *context, client.get(), options.duration,
                                             totals[t], errors[t], [&] {
                                               arrived = true;
                                               warm.arrive_and_wait();
                                             });
      if (!arrived) {
        warm.arrive_and_drop();  // failed before its window: the others do not wait for it
      }
      if (!ran && errors[t].empty()) {
        errors[t] = "failed";
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  for (std::size_t t = 0; t < count; ++t) {
    if (!errors[t].empty()) {
      error = errors[t];
      return false;
    }
    sum.add(totals[t]);
  }
  return true;
}

bool selectScenarios(const std::string& list, CeilingOptions& options) {
  std::istringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    bool found = false;
    for (const auto& scenario : kScenarios) {
      if (name == scenario.name) {
        options.scenarios.push_back(scenario);
        found = true;
      }
    }
    if (!found) {
      std::fprintf(stderr, "mqtls-ceiling: unknown scenario '%s'\n%s", name.c_str(), kUsage);
      return false;
    }
  }
  return true;
}

// Parses argv; returns the exit code to use when the program should stop now.
std::optional<int> parseOptions(int argc, char** argv, CeilingOptions& options) {
  std::string scenarios;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::string* field = arg == "--config"      ? &options.config
                         : arg == "--cert"      ? &options.client.cert
                         : arg == "--key"       ? &options.client.key
                         : arg == "--ca"        ? &options.client.ca
                         : arg == "--scenarios" ? &scenarios
                                                : nullptr;
    if (i + 1 < argc && field != nullptr) {
      *field = argv[++i];
    } else if (i + 1 < argc && arg == "--duration") {
      options.duration = std::atof(argv[++i]);
    } else if (arg == "--one-library") {
      options.one_library = true;
    } else if (i + 1 < argc && arg == "--threads") {
      options.threads = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "mqtls-ceiling: unknown argument or missing value: '%s'\n%s",
                   arg.c_str(), kUsage);
      return 2;
    }
  }
  options.client.verify_server = !options.client.ca.empty();
  options.client.server_identity = "127.0.0.1";
  if (scenarios.empty()) {
    options.scenarios.assign(std::begin(kScenarios), std::end(kScenarios));
  } else if (!selectScenarios(scenarios, options)) {
    return 2;
  }
  if (options.config.empty() || options.client.cert.empty() || options.client.key.empty() ||
      options.duration <= 0 || options.scenarios.empty() || options.threads < 1 ||
      options.threads > 64) {
    std::fprintf(stderr, "mqtls-ceiling: missing or invalid arguments\n%s", kUsage);
    return 2;
  }
  return std::nullopt;
}

// Listener 0's contexts, one per slot of `libraries`, built as mqtls builds them; null (errors
// printed) if the file has errors.
std::unique_ptr<tls::ContextStore> loadContexts(const std::string& path,
                                                const tls::LibraryContexts& libraries) {
  startup::CheckedConfig checked = startup::checkConfigFile(path);
  if (!checked.loaded.ok() || checked.contexts.empty()) {
    for (const auto& line : checked.loaded.errors) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fprintf(stderr, "mqtls-ceiling: %s has no usable listener\n", path.c_str());
    return nullptr;
  }
  auto store = tls::ContextStore::create(checked.contexts[0],
                                         checked.loaded.config->listeners[0].tls, libraries);
  if (!store) {
    std::fprintf(stderr, "mqtls-ceiling: %s\n", store.error().message.c_str());
    return nullptr;
  }
  std::printf("mqtls-ceiling with %s: listener '%s' of %s\n", OpenSSL_version(OPENSSL_VERSION),
              checked.loaded.config->listeners[0].name.c_str(), path.c_str());
  return std::move(store.value());
}

int run(int argc, char** argv) {
  CeilingOptions options;
  if (auto code = parseOptions(argc, argv, options)) {
    return *code;
  }
  // Server and client library contexts, one per thread each (all the default one with
  // --one-library); declared before everything made in them.
  const auto slots = static_cast<std::size_t>(options.one_library ? 1 : options.threads);
  tls::LibraryContexts libraries(slots);
  tls::LibraryContexts client_libraries(options.one_library ? 1 : slots + 1);
  for (const auto* warnings : {&libraries.warnings(), &client_libraries.warnings()}) {
    for (const auto& warning : *warnings) {
      std::fprintf(stderr, "mqtls-ceiling: %s\n", warning.c_str());
    }
  }
  std::unique_ptr<tls::ContextStore> contexts = loadContexts(options.config, libraries);
  if (!contexts) {
    return 2;
  }
  int status = 0;
  for (const auto& scenario : options.scenarios) {
    std::string error;
    Totals totals;
    if (!runThreads(scenario, options, *contexts, client_libraries, totals, error)) {
      std::printf("ceiling %s FAILED: %s\n", scenario.name, error.c_str());
      status = 1;
    } else if (scenario.resume && totals.resumed == 0) {
      std::printf("ceiling %s FAILED: no handshake resumed (is resumption off?)\n", scenario.name);
      status = 1;
    } else {
      printTotals(scenario, totals, options.threads);
    }
  }
  return status;
}

}  // namespace
}  // namespace mqtls::bench

int main(int argc, char** argv) {
  return mqtls::bench::run(argc, argv);
}

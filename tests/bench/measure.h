// What one run measures, and the CPU and memory accounting behind it: server-side CPU time comes
// from /proc/PID/stat (utime + stime over all threads), the generator's own from getrusage(),
// server memory from VmRSS in /proc/PID/status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mqtls::bench {

struct RunResult {
  std::string scenario;
  std::string target;
  bool skipped = false;  // scenario does not apply (e.g. a handshake scenario on plaintext)
  std::string failure;   // non-empty: the target did not work; the benchmark exits non-zero
  double seconds = 0;
  std::uint64_t ops = 0;     // handshakes + CONNACK, or messages received by the subscriber
  std::uint64_t errors = 0;  // failed attempts (connect scenarios) or lost messages (pub/sub)
  std::uint64_t resumed = 0;
  std::uint64_t payload_bytes = 0;
  std::vector<std::uint32_t> latency_us;
  bool server_measured = false;  // the target named its server processes (PIDs)
  double server_cpu = 0;         // seconds, the process terminating TLS
  double total_cpu = 0;  // seconds, every server-side process of the target (incl. the broker)
  double generator_cpu = 0;
  std::string tls;  // negotiated version, cipher and group
  // Idle runs: connections held open, and the growth of resident memory while they were, in
  // KiB, of the process terminating TLS and of all the target's processes.
  std::uint64_t connections = 0;
  double memory_server_kib = 0;
  double memory_total_kib = 0;
};

// Per-process CPU seconds (utime + stime); -1 if the process is gone.
double processCpuSeconds(int pid);
// Resident memory (VmRSS) of a process in KiB; -1 if the process is gone or unreadable.
long processRssKib(int pid);
// CPU seconds used by this process so far.
double selfCpuSeconds();

// Measures CPU used by `pids` (the first is the server) and by this process between start()
// and stop(), and stores it into a RunResult.
class CpuMeter {
 public:
  explicit CpuMeter(std::vector<int> pids) : pids_(std::move(pids)) {}
  void start();
  void stop(RunResult& result) const;

 private:
  std::vector<int> pids_;
  std::vector<double> start_;
  double self_start_ = 0;
};

// Raises this process's open-file limit to at least `needed` (beyond the hard limit only with
// the privilege to); false with `error` set if it stays below.
bool raiseFileLimit(std::size_t needed, std::string& error);

// The p-th percentile (0..100) of the samples, which are sorted in place; 0 if none.
double percentile(std::vector<std::uint32_t>& samples, double p);

}  // namespace mqtls::bench

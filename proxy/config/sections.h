// Readers for each part of the configuration file. Each fills its part of the model from a field
// (absent: defaults stay), reporting every problem found through ctx.diag.
#pragma once

#include <vector>

#include "config/model.h"
#include "config/yaml_reader.h"

namespace mqtls::config {

inline constexpr Duration kMaxDuration = std::chrono::hours(168);

// "auto" (or absent) resolves to the core count, clamped to 1..256.
void readWorkers(Context& ctx, const Field& field, int& workers);
void readLogging(Context& ctx, const Field& field, Logging& log);
void readMetrics(Context& ctx, const Field& field, Metrics& metrics);
// admin.listen, admin.allow_mutations; admin.tls is refused (not supported yet). Without
// admin.listen, metrics.listen (already read into `metrics`) is the admin address; two different
// addresses are an error.
void readAdmin(Context& ctx, const Field& field, const Metrics& metrics, Admin& admin);
// Empty if `listen` is a usable "host:port" ("[v6]:port" for IPv6), else what is wrong.
std::string checkListenAddress(const std::string& listen);
void readUpstream(Context& ctx, const Field& field, Upstream& upstream);
void readLimits(Context& ctx, const Field& field, Limits& limits);
void readIdentity(Context& ctx, const Field& field, IdentityPolicy& identity);
// At least one listener; names and (bind, port) pairs unique.
void readListeners(Context& ctx, const Field& field, std::vector<Listener>& listeners);
// Reads and checks the TLS settings, including the PEM files they name.
void readTls(Context& ctx, const Field& field, TlsSettings& tls);
// tls.ocsp (config/ocsp_section.cc); reads tls.client_auth, so call it after that is read.
void readOcsp(Context& ctx, const Field& field, TlsSettings& tls);

}  // namespace mqtls::config

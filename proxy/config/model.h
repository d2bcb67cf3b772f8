// The frozen configuration: plain structs, no yaml-cpp types. Built by config/loader.h, which
// guarantees every field below is validated (files readable, enums known, ranges sane).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/positions.h"

namespace mqtls::config {

using Duration = std::chrono::milliseconds;

enum class IdentitySource { Cn, Dn, SanUri, SpiffeId, SanDns, SanEmail, FingerprintSha256, Serial };
// RequireMatch: a client-sent user name must equal the certificate identity (else refused).
enum class UsernamePolicy { Replace, IfEmpty, RequireMatch };
enum class PasswordPolicy { Keep, Strip };
enum class ClientIdPolicy { Keep, RequireMatch, Replace, Prefix };
enum class AnonymousPolicy { Passthrough, Refuse };  // client_auth optional, no certificate

struct IdentityPolicy {
  std::vector<IdentitySource> username_from{IdentitySource::Cn};
  UsernamePolicy username = UsernamePolicy::Replace;
  PasswordPolicy password = PasswordPolicy::Keep;
  ClientIdPolicy client_id = ClientIdPolicy::Keep;
  std::string client_id_separator = ":";
  // MQTT 5: certificate fields added as user properties, (source, property name) in order.
  // Client-sent user properties with any of these names are removed first.
  std::vector<std::pair<IdentitySource, std::string>> user_properties;
  // MQTT 5: certificate fields added as user properties to every PUBLISH (and will) the client
  // sends; client-sent copies of these and of user_properties are removed first.
  std::vector<std::pair<IdentitySource, std::string>> publish_properties;
  AnonymousPolicy anonymous = AnonymousPolicy::Passthrough;
};

enum class ClientAuth { Required, Optional, None };
enum class TlsVersion { Tls12, Tls13 };
enum class CrlCheck { Leaf, Chain };  // check the leaf only, or every certificate of the chain
// strict: a CRL past its nextUpdate refuses the certificates it covers (OpenSSL's "CRL has
// expired"); lenient: they are accepted as long as that CRL does not list them (counted, logged).
enum class CrlNextUpdate { Strict, Lenient };
// stateful: one server-side session store per listener; tickets: stateless tickets encrypted
// with keys replicas can share.
enum class SessionMode { Stateful, Tickets };

// A server certificate chain and its key, beside the first one (cert_file, key_file).
struct ServerCertificate {
  std::string cert_file;  // chain PEM (leaf first)
  std::string key_file;   // private key PEM or PKCS#11 URI
};

struct SniSite;

// tls.ocsp: OCSP checking of client certificates (net/ocsp_decider.h). OpenSSL 3.0 cannot hold a
// server handshake while a request runs, so the check runs after the handshake, before the
// broker is dialled.
enum class OcspMode { Off, On };
// What an unreachable or invalid responder means: refuse the client, or let it through.
enum class OcspPolicy { FailClosed, FailOpen };
struct OcspSettings {
  OcspMode mode = OcspMode::Off;
  std::string responder;  // http:// URL; empty: the certificate's AIA OCSP URL
  Duration timeout = std::chrono::seconds(2);
  OcspPolicy policy = OcspPolicy::FailClosed;
  std::size_t cache_size = 10'000;  // answers kept (LRU), shared by the whole process
};

struct TlsSettings {
  std::string cert_file;  // server chain PEM (leaf first)
  std::string key_file;   // server private key PEM
  // More certificates for the same names, one per key type (an RSA one beside an ECDSA one);
  // OpenSSL serves the one the client's signature algorithms allow, ECDSA first.
  std::vector<ServerCertificate> more_certificates;
  std::string client_ca_file;  // trusted CAs for client certificates (empty iff client_auth none)
  ClientAuth client_auth = ClientAuth::Required;
  int verify_depth = 4;
  std::vector<std::string> crl_files;  // each a PEM/DER file or a directory of such files
  CrlCheck crl_check = CrlCheck::Leaf;
  CrlNextUpdate crl_next_update = CrlNextUpdate::Strict;
  // Client chains kept verified (tls/verified_chains.h, LRU) per context; 0: every handshake
  // verifies in full. SNI sites inherit it, each with a cache of its own.
  std::size_t verify_cache_size = 10'000;
  std::string ocsp_staple_file;  // DER OCSP response for the server certificate; empty: none
  TlsVersion min_version = TlsVersion::Tls12;
  TlsVersion max_version = TlsVersion::Tls13;
  std::string ciphers;            // TLS 1.2 cipher list (OpenSSL syntax)
  std::string ciphersuites;       // TLS 1.3 ciphersuites
  std::string groups;             // key-exchange groups, e.g. "X25519:P-256"
  std::vector<std::string> alpn;  // empty: no ALPN negotiation
  // tls.session (tls/session_store.h, tls/ticket_keys.h). The legacy keys session_cache_size
  // and session_timeout set session.cache_size and session.lifetime.
  SessionMode session_mode = SessionMode::Stateful;
  std::size_t session_cache_size = 20'000;  // stateful: sessions kept (LRU); 0 disables resumption
  Duration session_timeout = std::chrono::minutes(5);  // session.lifetime, capped at cert notAfter
  std::string ticket_key_file;  // tickets: HAProxy/nginx key file; empty: keys made in memory
  Duration ticket_rotation = std::chrono::hours(1);  // tickets without a key file
  OcspSettings ocsp;                                 // tls.ocsp
  // tls.sni: sites chosen by the name the client asks for; these settings serve the others.
  std::vector<SniSite> sites;
};

// One SNI site of a listener: its own certificates, client trust and, optionally, identity policy.
struct SniSite {
  // Lower-case DNS names; "*.example.com" matches exactly one label before ".example.com". An
  // exact name wins over a wildcard, an earlier site over a later one.
  std::vector<std::string> names;
  // Complete: the listener's settings with the site's certificates and trust in place; no sites.
  TlsSettings tls;
  // Replaces the configuration's identity policy for clients of this site.
  std::optional<IdentityPolicy> identity;
};

struct Listener {
  std::string name;                      // for logs and metrics
  std::string bind_address = "0.0.0.0";  // IPv4 or IPv6 literal
  std::uint16_t port = 8883;
  TlsSettings tls;
};

struct Upstream {
  std::string host = "127.0.0.1";  // name or address; ignored when unix_socket is set
  std::uint16_t port = 1883;
  std::string unix_socket;  // non-empty: connect over this Unix socket path
  Duration connect_timeout = std::chrono::seconds(5);
};

struct Limits {
  Duration handshake_timeout = std::chrono::seconds(10);
  Duration connect_timeout = std::chrono::seconds(15);    // accept -> complete CONNECT
  std::size_t max_connect_size = 64 * 1024;               // bytes, fixed header included
  std::size_t max_connections = 10'000;                   // across all listeners and workers
  std::size_t buffer_limit = 256 * 1024;                  // per direction before reads pause
  Duration drain_timeout = std::chrono::seconds(30);      // SIGTERM -> forced close
  Duration admission_timeout = std::chrono::seconds(10);  // CONNECT decoded -> decision
  std::size_t max_rewritten_packet = 16 * 1024 * 1024;    // framed: largest packet held whole
  bool frame_client_packets = false;  // cut client->broker into packets even with nothing to do
};

enum class LogFormat { Text, Json };

struct Logging {
  std::string level = "info";  // trace|debug|info|warn|error|critical|off
  LogFormat format = LogFormat::Text;
};

struct Metrics {
  std::string listen;  // "host:port" for the Prometheus endpoint; empty disables
};

// The admin HTTP listener (ops/admin_server.h): health, readiness, metrics and operations.
struct Admin {
  std::string listen;           // "host:port" ("[v6]:port"); empty: off (metrics.listen if set)
  bool allow_mutations = true;  // false: POST, PUT and DELETE answer 403
  // The background broker check behind /readyz and mqtls_upstream_ready: always (every 2 s), or
  // on_demand (only while /readyz is being asked: no connections to the broker otherwise).
  bool broker_check_always = true;
  // admin.tls: HTTPS with these settings (the same keys as a listener's tls section, without sni
  // or ocsp; client_auth defaults to required when client_ca is given, else none). Reloaded with
  // the listeners' contexts. Unset: plain HTTP.
  std::optional<TlsSettings> tls;
};

// How the kernel schedules the worker threads (Linux policies). Batch: SCHED_BATCH, a worker
// woken by bytes does not preempt the task running on its core (usually the broker, on the
// cores it shares with the proxy); it runs when that task blocks or its slice ends, and takes
// the burst in one read. Normal: the workers keep the policy the process was started with
// (SCHED_OTHER for most, where a woken worker preempts at once).
enum class WorkerScheduling { Batch, Normal };

struct Config {
  std::string source_path;  // the file it was loaded from
  // Where the TLS settings were written, for problems found later (reloads) to name file:line:col.
  SettingPositions positions;
  int workers = 0;  // resolved: >= 1 ("auto" becomes the core count)
  WorkerScheduling worker_scheduling = WorkerScheduling::Batch;
  std::vector<Listener> listeners;
  Upstream upstream;
  Limits limits;
  IdentityPolicy identity;
  Logging log;
  Metrics metrics;
  Admin admin;
};

std::string_view identitySourceName(IdentitySource source);

}  // namespace mqtls::config

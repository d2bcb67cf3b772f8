// Reader for a listener's tls section. It checks what the YAML says; what the named files hold
// (and whether OpenSSL takes the cipher and group lists) is checked by building the TLS context
// (tls/context.h, run by startup_check.h), which reports at the positions recorded here.
#include "config/sections.h"

#include <strings.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

namespace mqtls::config {
namespace {

// Reads "1.2" / "1.3" (quoted or not); refuses 1.0 and 1.1 by name.
bool readVersion(Context& ctx, const Field& field, TlsVersion& out) {
  auto text = readScalar(ctx, field, "a TLS version");
  if (!text) {
    return !field.present();
  }
  if (*text == "1.2" || *text == "1.3") {
    out = *text == "1.2" ? TlsVersion::Tls12 : TlsVersion::Tls13;
    return true;
  }
  if (*text == "1.0" || *text == "1.1" || *text == "1") {
    ctx.diag.add(field.mark, field.path,
                 "TLS " + *text + " is insecure and refused; use \"1.2\" or \"1.3\"");
  } else {
    ctx.diag.add(field.mark, field.path,
                 "unknown TLS version '" + *text + "'; use \"1.2\" or \"1.3\"");
  }
  return false;
}

// client_ca and crl: only read when client certificates are requested. False if a crl item was
// refused.
bool readClientTrust(Context& ctx, const Section& section, TlsSettings& tls) {
  const Field ca =
      section.require("client_ca",
                      "add 'client_ca: <PEM file of the CAs that issue client certificates>', or "
                      "set 'client_auth: none'");
  if (auto path = readPath(ctx, ca)) {
    tls.client_ca_file = *path;
    recordPosition(ctx, section.path() + ".client_ca", ca);
  }
  bool crl_ok = true;  // false once a crl item was refused
  for (const Field& item : readList(ctx, section.field("crl"))) {
    auto path = readPath(ctx, item);
    if (!path) {
      crl_ok = false;
      continue;
    }
    recordPosition(ctx, section.path() + ".crl[" + std::to_string(tls.crl_files.size()) + "]",
                   item);
    tls.crl_files.push_back(*path);
  }
  return crl_ok;
}

// crl_check and crl_next_update; "chain" needs CRLs to check against (checked when the trust
// settings were read).
void readCrlCheck(Context& ctx, const Section& section, bool trust_read, TlsSettings& tls) {
  const Field field = section.field("crl_check");
  if (readEnum<CrlCheck>(ctx, field, {{"leaf", CrlCheck::Leaf}, {"chain", CrlCheck::Chain}},
                         tls.crl_check) &&
      trust_read && tls.crl_check == CrlCheck::Chain && tls.crl_files.empty()) {
    ctx.diag.add(field.mark, field.path,
                 "crl_check chain checks every certificate of a client's chain against a CRL, "
                 "but no CRL is given; add 'crl: [<PEM file with a current CRL of each client "
                 "CA>]', or set 'crl_check: leaf'");
  }
  readEnum<CrlNextUpdate>(ctx, section.field("crl_next_update"),
                          {{"strict", CrlNextUpdate::Strict}, {"lenient", CrlNextUpdate::Lenient}},
                          tls.crl_next_update);
}

// ocsp_staple: the DER OCSP response stapled to handshakes (checked when the context is built).
void readOcspStaple(Context& ctx, const Section& section, TlsSettings& tls) {
  const Field field = section.field("ocsp_staple");
  if (!field.present()) {
    return;
  }
  if (auto path = readPath(ctx, field)) {
    tls.ocsp_staple_file = *path;
    recordPosition(ctx, section.path() + ".ocsp_staple", field);
  }
}

void readVersions(Context& ctx, const Section& section, TlsSettings& tls) {
  const Field min = section.field("min_version");
  const Field max = section.field("max_version");
  const bool min_ok = readVersion(ctx, min, tls.min_version);
  const bool max_ok = readVersion(ctx, max, tls.max_version);
  if (min_ok && max_ok && tls.min_version > tls.max_version) {
    const Field& at = min.present() ? min : max;
    ctx.diag.add(at.mark, at.path,
                 "min_version 1.3 is above max_version 1.2; raise max_version or lower "
                 "min_version");
  }
}

void readAlpn(Context& ctx, const Field& field, TlsSettings& tls) {
  for (const Field& item : readList(ctx, field)) {
    auto name = readString(ctx, item);
    if (name && (name->empty() || name->size() > 255)) {
      ctx.diag.add(item.mark, item.path,
                   "an ALPN protocol name must be 1 to 255 bytes long; e.g. mqtt");
    } else if (name) {
      tls.alpn.push_back(*name);
    }
  }
}

// The legacy flat keys: still read, but not together with a session section.
void readLegacySession(Context& ctx, const Section& section, bool has_session, TlsSettings& tls) {
  const Field size = section.field("session_cache_size");
  const Field timeout = section.field("session_timeout");
  for (const Field* legacy : {&size, &timeout}) {
    if (legacy->present() && has_session) {
      ctx.diag.add(legacy->mark, legacy->path,
                   "give either 'session:' or the older session_cache_size / session_timeout, "
                   "not both; write 'session: {cache_size: ..., lifetime: ...}'");
      return;
    }
  }
  if (auto n = readInteger(ctx, size, 0, 10'000'000)) {
    tls.session_cache_size = static_cast<std::size_t>(*n);
  }
  if (auto lifetime = readDuration(ctx, timeout, std::chrono::seconds(1), kMaxDuration)) {
    tls.session_timeout = *lifetime;
  }
}

// tls.session: mode, cache_size, lifetime, ticket_key_file, ticket_rotation.
void readSession(Context& ctx, const Section& tls_section, TlsSettings& tls) {
  const Field field = tls_section.field("session");
  readLegacySession(ctx, tls_section, field.present(), tls);
  Section section(ctx, field,
                  {"mode", "cache_size", "lifetime", "ticket_key_file", "ticket_rotation"});
  if (!field.present() || !section.isMap()) {
    return;
  }
  const bool mode_ok = readEnum<SessionMode>(
      ctx, section.field("mode"),
      {{"stateful", SessionMode::Stateful}, {"tickets", SessionMode::Tickets}}, tls.session_mode);
  if (auto n = readInteger(ctx, section.field("cache_size"), 0, 10'000'000)) {
    tls.session_cache_size = static_cast<std::size_t>(*n);
  }
  if (auto lifetime =
          readDuration(ctx, section.field("lifetime"), std::chrono::seconds(1), kMaxDuration)) {
    tls.session_timeout = *lifetime;
  }
  const Field keys = section.field("ticket_key_file");
  if (auto path = readPath(ctx, keys)) {
    tls.ticket_key_file = *path;
    recordPosition(ctx, keys.path, keys);
    if (mode_ok && tls.session_mode != SessionMode::Tickets) {
      ctx.diag.add(keys.mark, keys.path,
                   "ticket_key_file is only used with tickets; add 'mode: tickets' or remove it");
    }
  }
  if (auto rotation = readDuration(ctx, section.field("ticket_rotation"), std::chrono::seconds(1),
                                   kMaxDuration)) {
    tls.ticket_rotation = *rotation;
  }
}

bool isPkcs11Uri(const std::string& value) {
  return value.size() >= 7 && strncasecmp(value.c_str(), "pkcs11:", 7) == 0;
}

// `path` %-escaped for a PKCS#11 URI attribute value (RFC 3986 unreserved characters and '/'
// stay as they are).
std::string uriEscaped(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) != 0 || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// key: a PEM file, or a PKCS#11 URI (RFC 7512), which is not a path and is kept as written (the
// TLS context loads the key from the token and reports token, key and PIN problems). pin_file,
// only with a URI that gives no PIN itself, becomes the URI's pin-source, so the PIN is
// written in neither the config nor the URI.
void readKey(Context& ctx, const Section& section, const Field& key, TlsSettings& tls) {
  const auto text = readString(ctx, key);
  const bool on_token = text && isPkcs11Uri(*text);
  if (on_token) {
    tls.key_file = *text;
    recordPosition(ctx, key.path, key);
  } else if (auto path = text ? readPath(ctx, key) : std::nullopt) {
    tls.key_file = *path;
    recordPosition(ctx, key.path, key);
  }
  const Field pin = section.field("pin_file");
  const auto pin_path = readPath(ctx, pin);
  if (!pin_path || !text) {
    return;
  }
  if (!on_token) {
    ctx.diag.add(pin.mark, pin.path,
                 "pin_file is only used with a key on a PKCS#11 token; write 'key: "
                 "pkcs11:token=<label>;object=<key label>;type=private', or remove pin_file");
  } else if (text->find("pin-value=") != std::string::npos ||
             text->find("pin-source=") != std::string::npos) {
    ctx.diag.add(pin.mark, pin.path,
                 "the key's PKCS#11 URI already gives the PIN (pin-value or pin-source); remove "
                 "it from the URI or remove pin_file");
  } else {
    tls.key_file += (text->find('?') == std::string::npos ? "?" : "&");
    tls.key_file += "pin-source=file:" + uriEscaped(*pin_path);
  }
}

// The server's certificates: cert and key, or a certificates list (one per key type, e.g. ECDSA
// and RSA) whose first item fills cert_file/key_file, recorded under the keys "cert" and "key".
void readCertificates(Context& ctx, const Section& section, TlsSettings& tls) {
  const Field list = section.field("certificates");
  if (!list.present()) {
    const Field cert =
        section.require("cert", "add 'cert: <PEM file with the server certificate chain>'");
    const Field key = section.require("key", "add 'key: <PEM file with the server private key>'");
    if (auto path = readPath(ctx, cert)) {
      tls.cert_file = *path;
      recordPosition(ctx, section.path() + ".cert", cert);
    }
    readKey(ctx, section, key, tls);
    return;
  }
  for (const char* single : {"cert", "key", "pin_file"}) {
    if (const Field extra = section.field(single); extra.present()) {
      ctx.diag.add(extra.mark, extra.path,
                   std::string("give either '") + single +
                       "' or 'certificates', not both; move it into a certificates item");
    }
  }
  const auto items = readList(ctx, list);
  if (items.empty()) {
    ctx.diag.add(list.mark, list.path,
                 "certificates is empty; add '- {cert: <chain PEM>, key: <key PEM>}'");
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    Section item(ctx, items[i], {"cert", "key", "pin_file"});
    if (!item.isMap()) {
      continue;
    }
    TlsSettings one;
    const Field cert = item.require("cert", "add 'cert: <PEM file with a certificate chain>'");
    const Field key = item.require("key", "add 'key: <PEM file with its private key>'");
    if (auto path = readPath(ctx, cert)) {
      one.cert_file = *path;
    }
    readKey(ctx, item, key, one);
    const std::string name = i == 0 ? "" : ".certificates[" + std::to_string(i) + "]";
    if (cert.present()) {
      recordPosition(ctx, section.path() + name + ".cert", cert);
    }
    if (key.present()) {
      recordPosition(ctx, section.path() + name + ".key", key);
    }
    if (i == 0) {
      tls.cert_file = one.cert_file;
      tls.key_file = one.key_file;
    } else {
      tls.more_certificates.push_back({one.cert_file, one.key_file});
    }
  }
}

// How clients are verified: client_auth, client_ca, crl, crl_check, crl_next_update,
// verify_depth, ocsp.
void readTrust(Context& ctx, const Section& section, TlsSettings& tls) {
  const bool auth_ok = readEnum<ClientAuth>(ctx, section.field("client_auth"),
                                            {{"required", ClientAuth::Required},
                                             {"optional", ClientAuth::Optional},
                                             {"none", ClientAuth::None}},
                                            tls.client_auth);
  // With an unknown client_auth the trust settings are skipped rather than guessed at.
  const bool trust_read =
      auth_ok && tls.client_auth != ClientAuth::None && readClientTrust(ctx, section, tls);
  readCrlCheck(ctx, section, trust_read, tls);
  if (auto depth = readInteger(ctx, section.field("verify_depth"), 1, 16)) {
    tls.verify_depth = static_cast<int>(*depth);
  }
  readOcsp(ctx, section.field("ocsp"), tls);
}

constexpr std::array<std::string_view, 7> kTrustKeys = {
    "client_ca", "client_auth", "verify_depth", "crl", "crl_check", "crl_next_update", "ocsp"};

// A DNS name or "*.suffix" as a site name, lower-cased; nullopt (reported) otherwise.
std::optional<std::string> readSiteName(Context& ctx, const Field& item) {
  auto name = readString(ctx, item);
  if (!name) {
    return std::nullopt;
  }
  std::string lower;
  for (char c : *name) {
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  const std::string_view host = lower.starts_with("*.") ? std::string_view(lower).substr(2) : lower;
  const bool valid =
      !host.empty() && host.size() <= 253 && host.front() != '.' && host.back() != '.' &&
      host.find("..") == std::string_view::npos &&
      std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.';
      });
  if (!valid) {
    ctx.diag.add(item.mark, item.path,
                 "'" + *name +
                     "' is not a DNS name; write a name such as fleet-a.example.com or a "
                     "wildcard such as *.fleet-a.example.com");
    return std::nullopt;
  }
  return lower;
}

// One tls.sni item: names, certificates, optional trust (replacing the listener's when any trust
// key is given) and an optional identity section (replacing the global one).
void readSite(Context& ctx, const Field& field, const TlsSettings& listener, SniSite& site) {
  Section section(
      ctx, field,
      {"names", "cert", "key", "pin_file", "certificates", "ocsp_staple", "identity", "client_ca",
       "client_auth", "verify_depth", "crl", "crl_check", "crl_next_update", "ocsp"});
  if (!section.isMap()) {
    return;
  }
  const Field names = section.require("names", "add 'names: [<the DNS names this site serves>]'");
  for (const Field& item : readList(ctx, names)) {
    if (auto name = readSiteName(ctx, item)) {
      site.names.push_back(*name);
    }
  }
  site.tls = listener;
  site.tls.sites.clear();
  site.tls.cert_file.clear();
  site.tls.key_file.clear();
  site.tls.more_certificates.clear();
  site.tls.ocsp_staple_file.clear();  // a staple belongs to one certificate
  readCertificates(ctx, section, site.tls);
  readOcspStaple(ctx, section, site.tls);
  const bool own_trust = std::any_of(kTrustKeys.begin(), kTrustKeys.end(), [&](std::string_view k) {
    return section.field(std::string(k)).present();
  });
  if (own_trust) {
    const TlsSettings defaults;
    site.tls.client_auth = defaults.client_auth;
    site.tls.client_ca_file.clear();
    site.tls.crl_files.clear();
    site.tls.crl_check = defaults.crl_check;
    site.tls.crl_next_update = defaults.crl_next_update;
    site.tls.verify_depth = defaults.verify_depth;
    site.tls.ocsp = defaults.ocsp;
    readTrust(ctx, section, site.tls);
  }
  if (const Field identity = section.field("identity"); identity.present()) {
    site.identity.emplace();
    readIdentity(ctx, identity, *site.identity);
  }
}

// tls.sni: the sites; a name may belong to one site only.
void readSites(Context& ctx, const Field& field, TlsSettings& tls) {
  std::vector<SniSite> sites;
  std::vector<std::string> seen;
  for (const Field& item : readList(ctx, field)) {
    SniSite site;
    readSite(ctx, item, tls, site);
    for (const auto& name : site.names) {
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
        ctx.diag.add(item.mark, item.path,
                     "the name '" + name +
                         "' is already served by an earlier site; give each "
                         "name to one site");
      }
      seen.push_back(name);
    }
    sites.push_back(std::move(site));
  }
  tls.sites = std::move(sites);
}

}  // namespace

void readTls(Context& ctx, const Field& field, TlsSettings& tls) {
  Section section(ctx, field,
                  {"cert",
                   "key",
                   "certificates",
                   "client_ca",
                   "client_auth",
                   "verify_depth",
                   "verify_cache_size",
                   "crl",
                   "crl_check",
                   "crl_next_update",
                   "ocsp_staple",
                   "min_version",
                   "max_version",
                   "ciphers",
                   "ciphersuites",
                   "groups",
                   "alpn",
                   "session",
                   "session_cache_size",
                   "session_timeout",
                   "pin_file",
                   "ocsp",
                   "sni"});
  if (!section.isMap()) {
    return;
  }
  readCertificates(ctx, section, tls);
  readTrust(ctx, section, tls);
  if (auto n = readInteger(ctx, section.field("verify_cache_size"), 0, 10'000'000)) {
    tls.verify_cache_size = static_cast<std::size_t>(*n);  // sites inherit it
  }
  readOcspStaple(ctx, section, tls);
  readVersions(ctx, section, tls);
  for (auto [name, out] :
       {std::pair{"ciphers", &tls.ciphers}, std::pair{"ciphersuites", &tls.ciphersuites},
        std::pair{"groups", &tls.groups}}) {
    const Field list = section.field(name);
    if (auto text = readString(ctx, list)) {
      *out = *text;
      recordPosition(ctx, list.path, list);
    }
  }
  readAlpn(ctx, section.field("alpn"), tls);
  readSession(ctx, section, tls);
  readSites(ctx, section.field("sni"), tls);  // last: sites start from everything above
}

}  // namespace mqtls::config

// Reader for a listener's tls section, including the checks of the PEM files it names: each
// file must hold what its key promises, the key must match the certificate, and the server
// certificate must be valid now.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <ctime>

#include "config/sections.h"
#include "util/pem.h"

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

// The server chain and key: readable, matching, and the leaf valid now.
void checkServerIdentity(Context& ctx, const Field& cert, const Field& key,
                         const TlsSettings& tls) {
  std::optional<Result<std::vector<X509Ptr>>> chain;
  std::optional<Result<EvpPkeyPtr>> pkey;
  if (!tls.cert_file.empty()) {
    chain.emplace(pem::readCertificates(tls.cert_file));
    if (!*chain) {
      ctx.diag.add(cert.mark, cert.path,
                   (*chain).error().message +
                       "; point 'cert' at the server certificate chain (PEM, leaf first)");
    } else if (auto valid = pem::checkValidity((*chain)->front().get(), std::time(nullptr));
               !valid) {
      ctx.diag.add(cert.mark, cert.path,
                   valid.error().message + " ('" + tls.cert_file +
                       "'); renew it or point 'cert' at a currently valid certificate");
    }
  }
  if (!tls.key_file.empty()) {
    pkey.emplace(pem::readPrivateKey(tls.key_file));
    if (!*pkey) {
      ctx.diag.add(key.mark, key.path,
                   (*pkey).error().message + "; point 'key' at the server's private key (PEM)");
    }
  }
  if (chain && *chain && pkey && *pkey) {
    if (auto match = pem::checkKeyMatchesCertificate((*chain)->front().get(), (*pkey)->get());
        !match) {
      ctx.diag.add(key.mark, key.path,
                   match.error().message + " (first certificate of '" + tls.cert_file +
                       "'); use the key the certificate was issued for");
    }
  }
}

// Cipher, ciphersuite and group lists as OpenSSL will take them.
void checkAlgorithms(Context& ctx, const Section& section, const TlsSettings& tls) {
  if (tls.ciphers.empty() && tls.ciphersuites.empty() && tls.groups.empty()) {
    return;
  }
  SslCtxPtr ssl(SSL_CTX_new(TLS_server_method()));
  if (!ssl) {
    ERR_clear_error();
    return;
  }
  auto check = [&](std::string_view key, const std::string& value, auto apply) {
    if (!value.empty() && apply(ssl.get(), value.c_str()) != 1) {
      const Field field = section.field(key);
      ctx.diag.add(field.mark, field.path,
                   "OpenSSL accepts nothing in '" + value + "' (" + takeOpenSslError() +
                       "); check the names, or use \"\" for the default");
    }
    ERR_clear_error();
  };
  check("ciphers", tls.ciphers, SSL_CTX_set_cipher_list);
  check("ciphersuites", tls.ciphersuites, SSL_CTX_set_ciphersuites);
  check("groups", tls.groups, [](SSL_CTX* c, const char* list) {
    return static_cast<int>(SSL_CTX_set1_groups_list(c, list));
  });
}

// client_ca and crl: only read when client certificates are requested.
void readClientTrust(Context& ctx, const Section& section, TlsSettings& tls) {
  const Field ca =
      section.require("client_ca",
                      "add 'client_ca: <PEM file of the CAs that issue client certificates>', or "
                      "set 'client_auth: none'");
  if (auto path = readPath(ctx, ca)) {
    tls.client_ca_file = *path;
    if (auto certs = pem::readCertificates(*path); !certs) {
      ctx.diag.add(ca.mark, ca.path,
                   certs.error().message +
                       "; point 'client_ca' at the CA certificates that issue client "
                       "certificates");
    }
  }
  for (const Field& item : readList(ctx, section.field("crl"))) {
    auto path = readPath(ctx, item);
    if (!path) {
      continue;
    }
    tls.crl_files.push_back(*path);
    if (auto crls = pem::readCrls(*path); !crls) {
      ctx.diag.add(item.mark, item.path,
                   crls.error().message + "; point 'crl' at PEM CRLs from the client CAs");
    }
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

}  // namespace

void readTls(Context& ctx, const Field& field, TlsSettings& tls) {
  Section section(ctx, field,
                  {"cert", "key", "client_ca", "client_auth", "verify_depth", "crl", "crl_check",
                   "min_version", "max_version", "ciphers", "ciphersuites", "groups", "alpn",
                   "session_cache_size", "session_timeout"});
  if (!section.isMap()) {
    return;
  }
  const Field cert =
      section.require("cert", "add 'cert: <PEM file with the server certificate chain>'");
  const Field key = section.require("key", "add 'key: <PEM file with the server private key>'");
  tls.cert_file = readPath(ctx, cert).value_or("");
  tls.key_file = readPath(ctx, key).value_or("");
  const bool auth_ok = readEnum<ClientAuth>(ctx, section.field("client_auth"),
                                            {{"required", ClientAuth::Required},
                                             {"optional", ClientAuth::Optional},
                                             {"none", ClientAuth::None}},
                                            tls.client_auth);
  // With an unknown client_auth the trust settings are skipped rather than guessed at.
  if (auth_ok && tls.client_auth != ClientAuth::None) {
    readClientTrust(ctx, section, tls);
  }
  if (auto depth = readInteger(ctx, section.field("verify_depth"), 1, 16)) {
    tls.verify_depth = static_cast<int>(*depth);
  }
  readEnum<CrlCheck>(ctx, section.field("crl_check"),
                     {{"leaf", CrlCheck::Leaf}, {"chain", CrlCheck::Chain}}, tls.crl_check);
  readVersions(ctx, section, tls);
  tls.ciphers = readString(ctx, section.field("ciphers")).value_or("");
  tls.ciphersuites = readString(ctx, section.field("ciphersuites")).value_or("");
  tls.groups = readString(ctx, section.field("groups")).value_or("");
  readAlpn(ctx, section.field("alpn"), tls);
  if (auto size = readInteger(ctx, section.field("session_cache_size"), 0, 10'000'000)) {
    tls.session_cache_size = static_cast<std::size_t>(*size);
  }
  if (auto timeout = readDuration(ctx, section.field("session_timeout"), std::chrono::seconds(1),
                                  kMaxDuration)) {
    tls.session_timeout = *timeout;
  }
  checkServerIdentity(ctx, cert, key, tls);
  checkAlgorithms(ctx, section, tls);
}

}  // namespace mqtls::config

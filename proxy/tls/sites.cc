// SNI sites of a listener's context: built beside it, chosen per connection from the ClientHello.
//
// The choice is made in OpenSSL's ClientHello callback, which runs before the session is looked
// up and before a certificate is chosen: the connection moves to the site's SSL_CTX, so the
// site's certificates, client CA list, trust store, session ID context (a session of one site
// never resumes on another) and trust generation apply. The SSL keeps the verify mode it was made
// with, so the callback sets the site's mode, callback and depth on it too.
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "tls/build_steps.h"
#include "tls/context.h"

namespace mqtls::tls {
namespace {

std::string lowerCase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The first host_name of a server_name extension (RFC 6066 section 3), or empty if malformed.
std::string_view firstHostName(const unsigned char* data, std::size_t size) {
  if (size < 2) {
    return {};
  }
  std::size_t list = (std::size_t{data[0]} << 8) | data[1];
  std::size_t at = 2;
  list = std::min(list + 2, size);
  while (at + 3 <= list) {
    const unsigned type = data[at];
    const std::size_t length = (std::size_t{data[at + 1]} << 8) | data[at + 2];
    at += 3;
    if (at + length > list) {
      return {};
    }
    if (type == 0) {
      return {reinterpret_cast<const char*>(data + at), length};
    }
    at += length;
  }
  return {};
}

// A session ID context of the site's own, the same in every process with the same names.
void setSiteSessionContext(SSL_CTX* ctx, const std::vector<std::string>& names) {
  std::string joined = "mqtls-sni";
  for (const auto& name : names) {
    joined += "\n" + name;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(joined.data(), joined.size(), digest, &length, EVP_sha256(), nullptr);
  SSL_CTX_set_session_id_context(ctx, digest, std::min<unsigned int>(length, 32));
}

}  // namespace

void TlsContext::buildSites(BuildReport& report, const TlsContext* sibling) {
  for (std::size_t i = 0; i < settings_.sites.size(); ++i) {
    const config::SniSite& site = settings_.sites[i];
    BuildReport own;
    const TlsContext* sibling_site =
        sibling != nullptr && i < sibling->sites_.size() ? sibling->sites_[i].get() : nullptr;
    std::shared_ptr<TlsContext> built =
        buildOne(site.tls, own, sessions_, BuildSlot{library_, handshakes_, sibling_site});
    const std::string prefix = "sni[" + std::to_string(i) + "].";
    for (auto& problem : own.errors) {
      report.errors.push_back({prefix + problem.key, std::move(problem.message)});
    }
    for (auto& problem : own.warnings) {
      report.warnings.push_back({prefix + problem.key, std::move(problem.message)});
    }
    if (!built) {
      continue;
    }
    setSiteSessionContext(built->raw(), site.names);
    built->policy_ = site.identity;
    for (const auto& name : site.names) {
      site_names_.emplace_back(lowerCase(name), sites_.size());
    }
    sites_.push_back(std::move(built));
  }
  // Sorted by name, earlier sites first among equal names (the config refuses duplicates).
  std::stable_sort(site_names_.begin(), site_names_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  if (!sites_.empty()) {
    SSL_CTX_set_client_hello_cb(ctx_.get(), &TlsContext::chooseSite, this);
  }
}

const TlsContext& TlsContext::siteFor(std::string_view host_name) const {
  if (site_names_.empty() || host_name.empty()) {
    return *this;
  }
  if (host_name.back() == '.') {
    host_name.remove_suffix(1);
  }
  const std::string host = lowerCase(host_name);
  auto find = [this](const std::string& name) -> const TlsContext* {
    auto it = std::lower_bound(
        site_names_.begin(), site_names_.end(), name,
        [](const auto& entry, const std::string& key) { return entry.first < key; });
    return it != site_names_.end() && it->first == name ? sites_[it->second].get() : nullptr;
  };
  if (const TlsContext* exact = find(host)) {
    return *exact;
  }
  if (const auto dot = host.find('.'); dot != std::string::npos && dot > 0) {
    if (const TlsContext* wildcard = find("*" + host.substr(dot))) {
      return *wildcard;
    }
  }
  return *this;
}

int TlsContext::chooseSite(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const TlsContext*>(arg);
  const unsigned char* data = nullptr;
  std::size_t size = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &data, &size) != 1) {
    return SSL_CLIENT_HELLO_SUCCESS;  // no SNI: the listener's own settings
  }
  const TlsContext& site = self->siteFor(firstHostName(data, size));
  if (&site == self) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  SSL_CTX* target = site.raw();
  if (SSL_set_SSL_CTX(ssl, target) != target) {
    return SSL_CLIENT_HELLO_ERROR;
  }
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(target), SSL_CTX_get_verify_callback(target));
  SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(target));
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace mqtls::tls

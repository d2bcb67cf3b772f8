#include "tls/context_store.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "tls/crl.h"
#include "tls/hardware_key.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace {

bool isDirectory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

}  // namespace

namespace {

// The server certificates of settings as (cert, key) pairs, the first one first.
std::vector<config::ServerCertificate> certificatesOf(const config::TlsSettings& settings) {
  std::vector<config::ServerCertificate> all{{settings.cert_file, settings.key_file}};
  all.insert(all.end(), settings.more_certificates.begin(), settings.more_certificates.end());
  return all;
}

}  // namespace

std::vector<std::string> contextFiles(const config::TlsSettings& settings) {
  std::vector<std::string> files;
  auto add = [&files](const std::string& file) {
    // A directory where a file belongs is a build error, never something to digest.
    if (!file.empty() && !isDirectory(file) &&
        std::find(files.begin(), files.end(), file) == files.end()) {
      files.push_back(file);
    }
  };
  for (const auto& certificate : certificatesOf(settings)) {
    add(certificate.cert_file);
    if (!isPkcs11Uri(certificate.key_file)) {
      add(certificate.key_file);
    } else if (auto uri = parsePkcs11Uri(certificate.key_file); uri && !uri->pin_file.empty()) {
      add(uri->pin_file);  // a key on a token is not a file; its PIN file is
    }
  }
  for (const auto& site : settings.sites) {
    for (const auto& file : contextFiles(site.tls)) {
      add(file);
    }
  }
  if (settings.client_auth != config::ClientAuth::None) {
    add(settings.client_ca_file);
    for (const auto& crl : settings.crl_files) {
      add(crl);  // skipped if a directory: that stands for its files (see contextDirectories)
      for (const auto& file : crlDirectoryFiles(crl)) {
        add(file);
      }
    }
  }
  add(settings.ocsp_staple_file);
  if (settings.session_mode == config::SessionMode::Tickets) {
    add(settings.ticket_key_file);
  }
  return files;
}

std::vector<std::string> contextDirectories(const config::TlsSettings& settings) {
  std::vector<std::string> dirs;
  auto add = [&dirs](const std::string& dir) {
    if (isDirectory(dir) && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
      dirs.push_back(dir);
    }
  };
  if (settings.client_auth != config::ClientAuth::None) {
    for (const auto& crl : settings.crl_files) {
      add(crl);
    }
  }
  for (const auto& site : settings.sites) {
    for (const auto& dir : contextDirectories(site.tls)) {
      add(dir);
    }
  }
  return dirs;
}

bool keyAndCertificateDisagree(const config::TlsSettings& settings) {
  for (const auto& certificate : certificatesOf(settings)) {
    if (isPkcs11Uri(certificate.key_file)) {
      continue;
    }
    auto chain = pem::readCertificates(certificate.cert_file);
    auto key = pem::readPrivateKey(certificate.key_file);
    if (chain && key && !pem::checkKeyMatchesCertificate(chain->front().get(), key->get())) {
      return true;
    }
  }
  return std::any_of(settings.sites.begin(), settings.sites.end(),
                     [](const auto& site) { return keyAndCertificateDisagree(site.tls); });
}

TlsContextPtr ContextStore::build(const config::TlsSettings& settings, BuildReport& report,
                                  const SessionResources& sessions) {
  return TlsContext::build(settings, report, sessions);
}

TlsContextPtr ContextStore::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void ContextStore::replace(TlsContextPtr next) {
  if (!next) {
    return;  // never publish "no context": new handshakes keep the current one
  }
  TlsContextPtr previous;
  {
    std::lock_guard lock(mutex_);
    next->setReloadGeneration(++generation_);
    previous = std::exchange(current_, std::move(next));
  }
  if (previous) {
    previous->retire();
  }
}

std::uint64_t ContextStore::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

bool ContextStore::rebuild(const config::TlsSettings& settings, BuildReport& report) {
  // The listener's sessions (store or ticket keys) carry over to every context of it.
  TlsContextPtr next = build(settings, report, current()->sessions());
  if (!next) {
    return false;
  }
  replace(std::move(next));
  return true;
}

}  // namespace mqtls::tls

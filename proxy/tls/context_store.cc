#include "tls/context_store.h"

#include <algorithm>

#include "tls/hardware_key.h"
#include "util/pem.h"

namespace mqtls::tls {

std::vector<std::string> contextFiles(const config::TlsSettings& settings) {
  std::vector<std::string> files;
  auto add = [&files](const std::string& file) {
    if (!file.empty() && std::find(files.begin(), files.end(), file) == files.end()) {
      files.push_back(file);
    }
  };
  add(settings.cert_file);
  if (!isPkcs11Uri(settings.key_file)) {
    add(settings.key_file);
  } else if (auto uri = parsePkcs11Uri(settings.key_file); uri && !uri->pin_file.empty()) {
    add(uri->pin_file);  // a key on a token is not a file; its PIN file is
  }
  if (settings.client_auth != config::ClientAuth::None) {
    add(settings.client_ca_file);
    for (const auto& crl : settings.crl_files) {
      add(crl);
    }
  }
  if (settings.session_mode == config::SessionMode::Tickets) {
    add(settings.ticket_key_file);
  }
  return files;
}

bool keyAndCertificateDisagree(const config::TlsSettings& settings) {
  auto chain = pem::readCertificates(settings.cert_file);
  auto key = pem::readPrivateKey(settings.key_file);
  if (!chain || !key) {
    return false;
  }
  return !pem::checkKeyMatchesCertificate(chain->front().get(), key->get());
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
  std::lock_guard lock(mutex_);
  current_ = std::move(next);
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

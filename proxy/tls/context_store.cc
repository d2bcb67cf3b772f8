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

// True when a server key of `settings` or of one of its sites is on a PKCS#11 token.
bool keyOnToken(const config::TlsSettings& settings) {
  const auto certificates = certificatesOf(settings);
  return std::any_of(certificates.begin(), certificates.end(),
                     [](const auto& c) { return isPkcs11Uri(c.key_file); }) ||
         std::any_of(settings.sites.begin(), settings.sites.end(),
                     [](const auto& site) { return keyOnToken(site.tls); });
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
                                  const SessionResources& sessions, const BuildSlot& slot) {
  return TlsContext::build(settings, report, sessions, slot);
}

ContextStore::ContextStore(TlsContextPtr initial) : ContextStore(std::move(initial), nullptr) {}

ContextStore::ContextStore(TlsContextPtr initial, const LibraryContexts* libraries)
    : libraries_(libraries) {
  current_.push_back(std::move(initial));
}

std::vector<TlsContextPtr> ContextStore::buildFurtherSlots(const config::TlsSettings& settings,
                                                           const TlsContextPtr& first,
                                                           std::size_t slots,
                                                           BuildReport& report) const {
  std::vector<TlsContextPtr> all{first};
  if (keyOnToken(settings)) {
    // Each build logs in to the token: one login per build, not one per worker, so every
    // worker serves slot 0's context.
    all.resize(std::max<std::size_t>(slots, 1), first);
    return all;
  }
  for (std::size_t slot = 1; slot < slots; ++slot) {
    if (libraryOf(slot) == nullptr) {
      all.push_back(first);  // a slot without a library context of its own serves slot 0's
      continue;
    }
    BuildReport own;
    TlsContextPtr context =
        build(settings, own, first->sessions(), slotOf(slot, settings, first.get()));
    if (!context) {
      report.errors.insert(report.errors.end(), own.errors.begin(), own.errors.end());
      return {};
    }
    if (!context->sameTrustAs(*first)) {
      // The slots share one cache of verified chains, which is only sound under one trust.
      report.errors.push_back(
          {"client_ca",
           "the CA bundle or CRLs changed while the workers' contexts were being built; the "
           "reload their change triggers builds them again"});
      return {};
    }
    all.push_back(std::move(context));
  }
  return all;
}

Result<std::unique_ptr<ContextStore>> ContextStore::create(TlsContextPtr initial,
                                                           const config::TlsSettings& settings,
                                                           const LibraryContexts& libraries) {
  std::unique_ptr<ContextStore> store(new ContextStore(initial, &libraries));
  BuildReport report;
  TlsContextPtr first = initial;
  if (store->slotOf(0, settings).handshakes != initial->handshakeLibrary()) {
    // `initial` (the startup check's) has its SSL_CTX where its files were read; slot 0's
    // handshakes have a library context of their own.
    first = build(settings, report, initial->sessions(), store->slotOf(0, settings));
  }
  std::vector<TlsContextPtr> all =
      first ? store->buildFurtherSlots(settings, first, libraries.size(), report)
            : std::vector<TlsContextPtr>{};
  if (all.empty() && report.errors.size() == 1 && report.errors[0].key == "client_ca") {
    // The trust files changed since `initial` was built: build every slot from them once more.
    report = {};
    first = build(settings, report, initial->sessions(), store->slotOf(0, settings));
    all = first ? store->buildFurtherSlots(settings, first, libraries.size(), report)
                : std::vector<TlsContextPtr>{};
  }
  if (all.empty()) {
    std::string text;
    for (const auto& problem : report.errors) {
      text += (text.empty() ? "" : "\n") + ("tls." + problem.key) + ": " + problem.message;
    }
    return Error{text};
  }
  store->current_ = std::move(all);
  return store;
}

OSSL_LIB_CTX* ContextStore::libraryOf(std::size_t slot) const {
  return libraries_ != nullptr ? libraries_->at(slot) : nullptr;
}

BuildSlot ContextStore::slotOf(std::size_t slot, const config::TlsSettings& settings,
                               const TlsContext* sibling) const {
  BuildSlot built{libraryOf(slot), libraryOf(slot), sibling};
  // A key on a token is used through its engine, which stays where the key was loaded.
  if (libraries_ != nullptr && !keyOnToken(settings)) {
    built.handshakes = libraries_->handshakesAt(slot);
  }
  return built;
}

TlsContextPtr ContextStore::current(std::size_t slot) const {
  std::lock_guard lock(mutex_);
  return current_[std::min(slot, current_.size() - 1)];
}

void ContextStore::replace(std::vector<TlsContextPtr> next) {
  if (next.empty() || std::any_of(next.begin(), next.end(), [](const auto& c) { return !c; })) {
    return;  // never publish "no context": new handshakes keep the current one
  }
  std::vector<TlsContextPtr> previous;
  {
    std::lock_guard lock(mutex_);
    ++generation_;
    for (const auto& context : next) {
      context->setReloadGeneration(generation_);
    }
    previous = std::exchange(current_, std::move(next));
  }
  for (const auto& context : previous) {
    context->retire();
  }
}

std::uint64_t ContextStore::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

bool ContextStore::rebuild(const config::TlsSettings& settings, BuildReport& report) {
  const std::size_t slots = libraries_ != nullptr ? libraries_->size() : 1;
  // The listener's sessions (store or ticket keys) carry over to every context of it. The first
  // slot's build reports every problem; the others read the same files, so they fail only if a
  // file changed in between (then their problems are reported too).
  TlsContextPtr first = build(settings, report, current()->sessions(), slotOf(0, settings));
  if (!first) {
    return false;
  }
  std::vector<TlsContextPtr> next = buildFurtherSlots(settings, first, slots, report);
  if (next.empty()) {
    return false;
  }
  replace(std::move(next));
  return true;
}

}  // namespace mqtls::tls

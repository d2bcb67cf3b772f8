#include "tls/material_facts.h"

#include <openssl/asn1.h>
#include <openssl/x509.h>

#include <algorithm>

#include "tls/crl.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace {

// An ASN1_TIME as Unix seconds; 0 when absent or unreadable.
double unixSeconds(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return 0;
  }
  return static_cast<double>(timegm(&tm));
}

void addCertificate(MaterialFacts& facts, std::string role, X509* cert) {
  CertificateFact fact{std::move(role), pem::subjectLine(cert),
                       unixSeconds(X509_get0_notAfter(cert))};
  auto same = [&fact](const CertificateFact& other) {
    return other.role == fact.role && other.subject == fact.subject;
  };
  if (std::none_of(facts.certificates.begin(), facts.certificates.end(), same)) {
    facts.certificates.push_back(std::move(fact));
  }
}

void addServerFile(MaterialFacts& facts, const std::string& file) {
  auto chain = pem::readCertificates(file);
  if (!chain) {
    return;
  }
  for (std::size_t i = 0; i < chain->size(); ++i) {
    addCertificate(facts, i == 0 ? "server" : "chain", (*chain)[i].get());
  }
}

void addTrust(MaterialFacts& facts, const config::TlsSettings& settings) {
  if (settings.client_auth == config::ClientAuth::None) {
    return;
  }
  if (auto cas = pem::readCertificates(settings.client_ca_file)) {
    for (const auto& ca : *cas) {
      addCertificate(facts, "client_ca", ca.get());
    }
  }
  for (const auto& item : settings.crl_files) {
    auto crls = readCrlItem(item);
    if (!crls) {
      continue;
    }
    for (const auto& loaded : *crls) {
      CrlFact fact{pem::issuerLine(loaded.crl.get()),
                   unixSeconds(X509_CRL_get0_nextUpdate(loaded.crl.get()))};
      auto same = [&fact](const CrlFact& other) { return other.issuer == fact.issuer; };
      auto found = std::find_if(facts.crls.begin(), facts.crls.end(), same);
      if (found == facts.crls.end()) {
        facts.crls.push_back(std::move(fact));
      } else {
        // Two CRLs of one issuer: the one that goes stale first is what matters.
        found->next_update = std::min(found->next_update, fact.next_update);
      }
    }
  }
}

MaterialFacts factsOf(std::string scope, const config::TlsSettings& settings) {
  MaterialFacts facts;
  facts.scope = std::move(scope);
  addServerFile(facts, settings.cert_file);
  for (const auto& more : settings.more_certificates) {
    addServerFile(facts, more.cert_file);
  }
  addTrust(facts, settings);
  return facts;
}

}  // namespace

std::vector<MaterialFacts> materialFacts(const std::string& listener,
                                         const config::TlsSettings& settings) {
  std::vector<MaterialFacts> all{factsOf(listener, settings)};
  for (const auto& site : settings.sites) {
    std::string scope = listener + "/" + (site.names.empty() ? std::string("?") : site.names[0]);
    all.push_back(factsOf(std::move(scope), site.tls));
  }
  return all;
}

}  // namespace mqtls::tls

#include "tls/build_steps.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/hardware_key.h"
#include "util/pem.h"

namespace mqtls::tls::detail {
namespace {

// "'subject' in 'file'", for messages about one certificate of a file.
std::string certificateIn(X509* cert, const std::string& file) {
  return "'" + pem::subjectLine(cert) + "' in '" + file + "'";
}

// The chain order: certificate i+1 issued certificate i.
void checkChainOrder(const std::vector<X509Ptr>& chain, const std::string& file,
                     BuildReport& report) {
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
    if (X509_check_issued(chain[i + 1].get(), chain[i].get()) != X509_V_OK) {
      addError(report, "cert",
               "certificate " + std::to_string(i + 2) + " of '" + file +
                   "' did not issue certificate " + std::to_string(i + 1) +
                   "; order the chain leaf first, each certificate followed by its issuer");
    }
  }
}

// Installs leaf and chain; OpenSSL refuses a certificate its security level rejects.
void installChain(SSL_CTX* ctx, const std::vector<X509Ptr>& chain, const std::string& file,
                  BuildReport& report) {
  if (SSL_CTX_use_certificate(ctx, chain.front().get()) != 1) {
    addError(report, "cert",
             "OpenSSL refuses certificate " + certificateIn(chain.front().get(), file) + " (" +
                 takeOpenSslError() +
                 "); issue it with a stronger key or signature (e.g. EC P-256 or RSA 2048+, "
                 "SHA-256)");
  }
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
      addError(report, "cert",
               "certificate " + std::to_string(i + 1) + " " + certificateIn(chain[i].get(), file) +
                   " cannot be added to the chain (" + takeOpenSslError() +
                   "); replace it with one OpenSSL accepts (e.g. EC P-256 or RSA 2048+, "
                   "SHA-256) or remove it");
    }
  }
}

}  // namespace

// Installs the server chain and key; checks key/cert match, validity and chain order.
void installServerIdentity(SSL_CTX* ctx, const config::TlsSettings& settings, BuildReport& report) {
  auto chain = pem::readCertificates(settings.cert_file);
  const bool on_token = isPkcs11Uri(settings.key_file);  // the key stays on a PKCS#11 token
  auto key = on_token ? loadHardwareKey(settings.key_file) : pem::readPrivateKey(settings.key_file);
  if (!chain) {
    addError(
        report, "cert",
        chain.error().message + "; point 'cert' at the server certificate chain (PEM, leaf first)");
  }
  if (!key) {
    addError(
        report, "key",
        key.error().message + (on_token ? "" : "; point 'key' at the server's private key (PEM)"));
  }
  if (!chain) {
    return;
  }
  X509* leaf = chain->front().get();
  if (auto valid = pem::checkValidity(leaf, std::time(nullptr)); !valid) {
    addError(report, "cert",
             valid.error().message + " ('" + settings.cert_file +
                 "'); renew it or point 'cert' at a currently valid certificate");
  }
  checkChainOrder(*chain, settings.cert_file, report);
  installChain(ctx, *chain, settings.cert_file, report);
  if (!key) {
    return;
  }
  if (auto match = pem::checkKeyMatchesCertificate(leaf, key->get()); !match) {
    addError(report, "key",
             match.error().message + " (first certificate of '" + settings.cert_file +
                 "'); use the key the certificate was issued for");
  } else if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
    addError(report, "key",
             "OpenSSL refuses the private key in '" + redactPkcs11Uri(settings.key_file) + "' (" +
                 takeOpenSslError() + "); use an EC P-256 or RSA 2048+ key");
  }
}

}  // namespace mqtls::tls::detail

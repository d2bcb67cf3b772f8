#include "tls/build_steps.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <memory>

#include "tls/crl.h"
#include "util/openssl_ptr.h"
#include "util/pem.h"

namespace mqtls::tls::detail {
namespace {

// What a CRL past its nextUpdate means under the configured policy, for the build warning.
std::string staleConsequence(config::CrlNextUpdate policy) {
  if (policy == config::CrlNextUpdate::Lenient) {
    return "client certificates it covers are still accepted (crl_next_update lenient; each "
           "such handshake is counted in mqtls_tls_stale_crl_accepted_total) unless it lists "
           "them";
  }
  return "client certificates it covers are refused (CRL has expired) until it is replaced";
}

// OpenSSL computes a certificate's extension cache and sorts a CRL's revoked list on first use,
// then lets later users read them without its lock. Doing both here, on the thread that builds
// the context and before it is published, leaves the workers only reading what they share.
// Leaves the error queue as it was: a bad extension is reported when a handshake meets it.
void precomputeCaches(X509* certificate) {
  ERR_set_mark();
  X509_check_purpose(certificate, -1, 0);
  ERR_pop_to_mark();
}

void precomputeCaches(X509_CRL* crl) {
  ERR_set_mark();
  X509_REVOKED* revoked = nullptr;
  std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER_free>> serial(ASN1_INTEGER_new());
  if (serial) {
    X509_CRL_get0_by_serial(crl, &revoked, serial.get());  // sorts; the answer does not matter
  }
  ERR_pop_to_mark();
}

// Adds the CRLs of settings.crl_files[index] (a file or a directory) to `store`; warns about
// each one past its nextUpdate.
void installCrlItem(X509_STORE* store, const config::TlsSettings& settings, std::size_t index,
                    OSSL_LIB_CTX* library, BuildReport& report) {
  const std::string& item = settings.crl_files[index];
  const std::string key = "crl[" + std::to_string(index) + "]";
  auto crls = readCrlItem(item, library);
  if (!crls) {
    addError(report, key,
             crls.error().message +
                 "; point 'crl' at PEM or DER CRLs of the client CAs, or at a directory of them");
    return;
  }
  for (auto& loaded : *crls) {
    precomputeCaches(loaded.crl.get());
    X509_STORE_add_crl(store, loaded.crl.get());
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(loaded.crl.get());
    if (next != nullptr && X509_cmp_current_time(next) < 0) {
      report.warnings.push_back(
          SettingProblem{key, "the CRL of '" + pem::issuerLine(loaded.crl.get()) + "' in '" +
                                  loaded.file + "' is past its nextUpdate (" + isoDate(next) +
                                  "): " + staleConsequence(settings.crl_next_update) +
                                  "; fetch a current CRL from that CA"});
    }
  }
  ERR_clear_error();
}

}  // namespace

std::string isoDate(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return {};
  }
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Trust store for client certificates: CA bundle, CRLs and the verification mode.
void installClientVerification(SSL_CTX* ctx, const config::TlsSettings& settings,
                               OSSL_LIB_CTX* library, VerifiedChains* chains, BuildReport& report) {
  if (settings.client_auth == config::ClientAuth::None) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return;
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (auto cas = pem::readCertificates(settings.client_ca_file, library); !cas) {
    addError(report, "client_ca",
             cas.error().message +
                 "; point 'client_ca' at the CA certificates that issue client certificates");
  } else {
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (auto& ca : *cas) {
      precomputeCaches(ca.get());
      X509_STORE_add_cert(store, ca.get());
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca.get())));
    }
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  for (std::size_t i = 0; i < settings.crl_files.size(); ++i) {
    installCrlItem(store, settings, i, library, report);
  }
  if (!settings.crl_files.empty()) {
    unsigned long flags = X509_V_FLAG_CRL_CHECK;
    if (settings.crl_check == config::CrlCheck::Chain) {
      flags |= X509_V_FLAG_CRL_CHECK_ALL;
    }
    X509_STORE_set_flags(store, flags);
  }
  int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
  if (settings.client_auth == config::ClientAuth::Required) {
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  // With CRLs, crl_next_update decides whether a CRL past its nextUpdate refuses (strict).
  SSL_CTX_set_verify(ctx, mode, settings.crl_files.empty() ? nullptr : &verifyWithCrlPolicy);
  SSL_CTX_set_verify_depth(ctx, settings.verify_depth);
  if (chains != nullptr) {
    // Runs instead of X509_verify_cert, which it calls on a miss (with the callback above).
    SSL_CTX_set_cert_verify_callback(ctx, &VerifiedChains::callback, chains);
  }
}

}  // namespace mqtls::tls::detail

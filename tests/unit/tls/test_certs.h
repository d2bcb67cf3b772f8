// Certificates, keys and CRLs made inside a test with the OpenSSL API, for cases the shared PKI
// (certs/gen.sh) does not hold: lifetimes of seconds, weak keys, stale CRLs. Issuers come from
// that PKI (e.g. intermediate-ca.pem / intermediate-ca.key in MQTLS_CERTS_DIR).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <string>

#include "util/openssl_ptr.h"

namespace mqtls::testing {

inline EvpPkeyPtr ecKey() {
  return EvpPkeyPtr(EVP_EC_gen("P-256"));
}

inline EvpPkeyPtr rsaKey(unsigned int bits) {
  return EvpPkeyPtr(EVP_RSA_gen(bits));
}

// A certificate for `key` named CN=`cn`, valid from now+not_before to now+not_after seconds,
// signed by issuer/issuer_key (self-signed when issuer is null).
inline X509Ptr makeCertificate(EVP_PKEY* key, const std::string& cn, long not_before,
                               long not_after, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                   static_cast<long>(std::time(nullptr) & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mqtls test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

// An empty CRL of `issuer`, last updated now+last_update and due at now+next_update seconds.
inline X509CrlPtr makeCrl(X509* issuer, EVP_PKEY* issuer_key, long last_update, long next_update) {
  X509CrlPtr crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer));
  ASN1_TIME* last = X509_gmtime_adj(nullptr, last_update);
  ASN1_TIME* next = X509_gmtime_adj(nullptr, next_update);
  X509_CRL_set1_lastUpdate(crl.get(), last);
  X509_CRL_set1_nextUpdate(crl.get(), next);
  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  X509_CRL_sign(crl.get(), issuer_key, EVP_sha256());
  return crl;
}

inline X509Ptr readCertificateFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  X509* cert = file != nullptr ? PEM_read_X509(file, nullptr, nullptr, nullptr) : nullptr;
  if (file != nullptr) {
    std::fclose(file);
  }
  return X509Ptr(cert);
}

inline EvpPkeyPtr readKeyFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  EVP_PKEY* key = file != nullptr ? PEM_read_PrivateKey(file, nullptr, nullptr, nullptr) : nullptr;
  if (file != nullptr) {
    std::fclose(file);
  }
  return EvpPkeyPtr(key);
}

// Writes PEM objects to `path` (overwriting); true on success.
template <typename... Writers>
bool writePem(const std::string& path, Writers... writers) {
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    return false;
  }
  const bool ok = (writers(file) && ...);
  return std::fclose(file) == 0 && ok;
}

inline auto certPem(X509* cert) {
  return [cert](FILE* f) { return PEM_write_X509(f, cert) == 1; };
}
inline auto keyPem(EVP_PKEY* key) {
  return [key](FILE* f) {
    return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  };
}
inline auto crlPem(X509_CRL* crl) {
  return [crl](FILE* f) { return PEM_write_X509_CRL(f, crl) == 1; };
}

}  // namespace mqtls::testing

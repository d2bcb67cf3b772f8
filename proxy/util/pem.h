// Reading PEM material from disk with messages fit for a config error: each failure names the
// file and says what was expected. Shared by config validation and TLS context building.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "util/openssl_ptr.h"
#include "util/result.h"

namespace mqtls::pem {

// `library` in each reader: the OpenSSL library context the objects belong to (their signature
// checks and key operations fetch algorithms from it); null is OpenSSL's default one.

// All certificates in the file, in order. Fails if the file is unreadable, holds no certificate,
// or holds a malformed PEM block.
Result<std::vector<X509Ptr>> readCertificates(const std::string& path,
                                              OSSL_LIB_CTX* library = nullptr);

// The single private key in the file (unencrypted PEM, any algorithm).
Result<EvpPkeyPtr> readPrivateKey(const std::string& path, OSSL_LIB_CTX* library = nullptr);

// All CRLs in the file. Fails if none or malformed.
Result<std::vector<X509CrlPtr>> readCrls(const std::string& path, OSSL_LIB_CTX* library = nullptr);

// The next PEM certificate (CRL) of `bio`, made in `library`; null at the end or on an error
// (OpenSSL's error queue says which). Never leaks the object it prepared.
X509Ptr readPemCertificate(BIO* bio, OSSL_LIB_CTX* library);
X509CrlPtr readPemCrl(BIO* bio, OSSL_LIB_CTX* library);

// Ok if `key` is the private half of `cert`'s public key.
Status checkKeyMatchesCertificate(X509* cert, EVP_PKEY* key);

// Ok if `now` lies within the certificate's validity; the message says which bound failed.
Status checkValidity(X509* cert, std::time_t now);

// Subject of the certificate, one line (RFC 2253), for messages.
std::string subjectLine(X509* cert);

// Issuer of the CRL, one line (RFC 2253), for messages.
std::string issuerLine(X509_CRL* crl);

}  // namespace mqtls::pem

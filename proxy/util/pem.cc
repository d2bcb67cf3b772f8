#include "util/pem.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mqtls {

std::string takeOpenSslError(const char* fallback) {
  unsigned long code = ERR_get_error();
  std::string text = fallback;
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text = buf;
  }
  ERR_clear_error();
  return text;
}

namespace pem {
namespace {

// Loads the whole file; fails with a message naming it (and the system's reason).
Result<std::string> slurp(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Result<std::string>::failure("'" + path + "' is a directory, not a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Result<std::string>::failure("cannot read file '" + path + "' (" + std::strerror(errno) +
                                        ")");
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) {
    return Result<std::string>::failure("cannot read file '" + path + "'");
  }
  if (out.str().empty()) {
    return Result<std::string>::failure("file '" + path + "' is empty");
  }
  return out.str();
}

BioPtr memoryBio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// True once the BIO has only whitespace left, i.e. PEM reading stopped at a clean end.
bool atEndOfPem() {
  unsigned long err = ERR_peek_last_error();
  bool clean = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (clean) {
    ERR_clear_error();
  }
  return clean;
}

}  // namespace

X509Ptr readPemCertificate(BIO* bio, OSSL_LIB_CTX* library) {
  // PEM_read_bio_X509 fills a prepared object; a failed parse frees it and nulls the pointer,
  // a missing PEM block leaves it to us.
  X509* prepared = X509_new_ex(library, nullptr);
  if (prepared == nullptr) {
    return nullptr;
  }
  if (PEM_read_bio_X509(bio, &prepared, nullptr, nullptr) == nullptr) {
    X509_free(prepared);
    return nullptr;
  }
  return X509Ptr(prepared);
}

X509CrlPtr readPemCrl(BIO* bio, OSSL_LIB_CTX* library) {
  X509_CRL* prepared = X509_CRL_new_ex(library, nullptr);
  if (prepared == nullptr) {
    return nullptr;
  }
  if (PEM_read_bio_X509_CRL(bio, &prepared, nullptr, nullptr) == nullptr) {
    X509_CRL_free(prepared);
    return nullptr;
  }
  return X509CrlPtr(prepared);
}

Result<std::vector<X509Ptr>> readCertificates(const std::string& path, OSSL_LIB_CTX* library) {
  auto data = slurp(path);
  if (!data) {
    return data.error();
  }
  ERR_clear_error();
  BioPtr bio = memoryBio(*data);
  std::vector<X509Ptr> certs;
  while (X509Ptr cert = readPemCertificate(bio.get(), library)) {
    certs.push_back(std::move(cert));
  }
  if (!atEndOfPem()) {
    return Error{"file '" + path + "' holds a malformed certificate: " + takeOpenSslError()};
  }
  if (certs.empty()) {
    return Error{"file '" + path +
                 "' holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"};
  }
  return certs;
}

Result<EvpPkeyPtr> readPrivateKey(const std::string& path, OSSL_LIB_CTX* library) {
  auto data = slurp(path);
  if (!data) {
    return data.error();
  }
  ERR_clear_error();
  BioPtr bio = memoryBio(*data);
  // An empty passphrase callback result makes encrypted keys fail instead of prompting.
  auto no_passphrase = [](char*, int, int, void*) -> int { return 0; };
  EVP_PKEY* key =
      PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, no_passphrase, nullptr, library, nullptr);
  if (key == nullptr) {
    return Error{"file '" + path +
                 "' holds no readable unencrypted PEM private key: " + takeOpenSslError()};
  }
  return EvpPkeyPtr(key);
}

Result<std::vector<X509CrlPtr>> readCrls(const std::string& path, OSSL_LIB_CTX* library) {
  auto data = slurp(path);
  if (!data) {
    return data.error();
  }
  ERR_clear_error();
  BioPtr bio = memoryBio(*data);
  std::vector<X509CrlPtr> crls;
  while (X509CrlPtr crl = readPemCrl(bio.get(), library)) {
    crls.push_back(std::move(crl));
  }
  if (!atEndOfPem()) {
    return Error{"file '" + path + "' holds a malformed CRL: " + takeOpenSslError()};
  }
  if (crls.empty()) {
    return Error{"file '" + path + "' holds no PEM CRL (expected -----BEGIN X509 CRL-----)"};
  }
  return crls;
}

Status checkKeyMatchesCertificate(X509* cert, EVP_PKEY* key) {
  ERR_clear_error();
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    return Status::failure("private key does not match certificate '" + subjectLine(cert) + "'");
  }
  return Status::success();
}

Status checkValidity(X509* cert, std::time_t now) {
  if (X509_cmp_time(X509_get0_notBefore(cert), &now) > 0) {
    return Status::failure("certificate '" + subjectLine(cert) + "' is not valid yet");
  }
  if (X509_cmp_time(X509_get0_notAfter(cert), &now) < 0) {
    return Status::failure("certificate '" + subjectLine(cert) + "' has expired");
  }
  return Status::success();
}

namespace {

// The name on one line (RFC 2253); empty if it cannot be printed.
std::string nameLine(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) {
    ERR_clear_error();
    return {};
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

}  // namespace

std::string subjectLine(X509* cert) {
  return nameLine(X509_get_subject_name(cert));
}

std::string issuerLine(X509_CRL* crl) {
  return nameLine(X509_CRL_get_issuer(crl));
}

}  // namespace pem
}  // namespace mqtls

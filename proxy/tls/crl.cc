#include "tls/crl.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tls/context.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace {

namespace fs = std::filesystem;

// The whole file; fails with a message naming it.
Result<std::string> readWhole(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return Error{"'" + path + "' is a directory, not a file"};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{"cannot read file '" + path + "' (" + std::strerror(errno) + ")"};
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    return Error{"cannot read file '" + path + "'"};
  }
  if (data.empty()) {
    return Error{"file '" + path + "' is empty"};
  }
  return data;
}

// PEM CRLs: every "X509 CRL" block, and nothing malformed.
Result<std::vector<X509CrlPtr>> parsePem(const std::string& path, const std::string& data,
                                         OSSL_LIB_CTX* library) {
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  std::vector<X509CrlPtr> crls;
  while (X509CrlPtr crl = pem::readPemCrl(bio.get(), library)) {
    crls.push_back(std::move(crl));
  }
  unsigned long last = ERR_peek_last_error();
  const bool clean =
      ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (!clean) {
    return Error{"file '" + path + "' holds a malformed PEM CRL: " + takeOpenSslError()};
  }
  ERR_clear_error();
  if (crls.empty()) {
    return Error{"file '" + path +
                 "' holds no PEM CRL (expected -----BEGIN X509 CRL-----); is it a "
                 "certificate or a key?"};
  }
  return crls;
}

// One DER CRL filling the whole file.
Result<std::vector<X509CrlPtr>> parseDer(const std::string& path, const std::string& data,
                                         OSSL_LIB_CTX* library) {
  const auto* at = reinterpret_cast<const unsigned char*>(data.data());
  const unsigned char* end = at + data.size();
  // A failed d2i frees the prepared object and nulls the pointer.
  X509_CRL* prepared = X509_CRL_new_ex(library, nullptr);
  X509CrlPtr crl(prepared != nullptr ? d2i_X509_CRL(&prepared, &at, static_cast<long>(data.size()))
                                     : nullptr);
  ERR_clear_error();
  if (!crl || at != end) {
    return Error{"file '" + path + "' holds neither PEM CRLs nor a DER CRL"};
  }
  std::vector<X509CrlPtr> crls;
  crls.push_back(std::move(crl));
  return crls;
}

// The slot of an SSL marking a handshake accepted despite a CRL past its nextUpdate. OpenSSL
// hands out ex_data indexes once per process; the slot holds no memory.
int staleCrlSlot() {
  static const int slot = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

}  // namespace

Result<std::vector<X509CrlPtr>> readCrlFile(const std::string& path, OSSL_LIB_CTX* library) {
  auto data = readWhole(path);
  if (!data) {
    return data.error();
  }
  ERR_clear_error();
  if (data->find("-----BEGIN") != std::string::npos) {
    return parsePem(path, *data, library);
  }
  return parseDer(path, *data, library);
}

std::vector<std::string> crlDirectoryFiles(const std::string& path) {
  std::vector<std::string> files;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return files;
  }
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name.empty() || name.front() == '.' || !fs::is_regular_file(it->path(), type_ec)) {
      continue;  // hidden (e.g. "..data"), a subdirectory, or a dangling link
    }
    files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

Result<std::vector<LoadedCrl>> readCrlItem(const std::string& path, OSSL_LIB_CTX* library) {
  std::error_code ec;
  const bool directory = fs::is_directory(path, ec);
  std::vector<std::string> files = directory ? crlDirectoryFiles(path) : std::vector{path};
  if (directory && files.empty()) {
    return Error{"directory '" + path + "' holds no CRL file"};
  }
  std::vector<LoadedCrl> loaded;
  for (const auto& file : files) {
    auto crls = readCrlFile(file, library);
    if (!crls) {
      return crls.error();
    }
    for (auto& crl : *crls) {
      loaded.push_back(LoadedCrl{std::move(crl), file});
    }
  }
  return loaded;
}

int verifyWithCrlPolicy(int ok, X509_STORE_CTX* store) {
  if (ok != 0 || X509_STORE_CTX_get_error(store) != X509_V_ERR_CRL_HAS_EXPIRED) {
    return ok;
  }
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const config::TlsSettings* settings = siteSettings(ssl);
  if (settings == nullptr || settings->crl_next_update != config::CrlNextUpdate::Lenient) {
    return ok;
  }
  SSL_set_ex_data(ssl, staleCrlSlot(), ssl);  // any non-null value marks it
  X509_STORE_CTX_set_error(store, X509_V_OK);
  return 1;
}

bool acceptedWithStaleCrl(SSL* ssl) {
  return ssl != nullptr && SSL_get_ex_data(ssl, staleCrlSlot()) != nullptr;
}

}  // namespace mqtls::tls

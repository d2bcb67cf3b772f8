// Certificate revocation lists as a `tls.crl` item names them, and the nextUpdate policy
// (`tls.crl_next_update`) applied while a client certificate is verified.
//
// An item is a file or a directory. A file holds PEM (one or several "X509 CRL" blocks) or one
// DER CRL, told apart by its content. A directory stands for every non-hidden regular file in
// it (symlinks followed, as a Kubernetes Secret volume mounts its keys through "..data"), each
// of which must hold CRLs.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "util/openssl_ptr.h"
#include "util/result.h"

namespace mqtls::tls {

// One CRL and the file it came from (for messages).
struct LoadedCrl {
  X509CrlPtr crl;
  std::string file;
};

// Every CRL of the file: PEM with one or more CRLs, or a single DER CRL. Fails (naming the
// file and what it holds instead) if it is unreadable, empty, or holds anything else. The CRLs
// belong to OpenSSL library context `library` (null: the default one).
Result<std::vector<X509CrlPtr>> readCrlFile(const std::string& path,
                                            OSSL_LIB_CTX* library = nullptr);

// The files a directory item stands for: its non-hidden entries that are (or link to) regular
// files, as paths inside the directory, sorted by name. Empty if `path` is not a directory.
std::vector<std::string> crlDirectoryFiles(const std::string& path);

// Every CRL of one `crl` item (file or directory; files in name order). Fails on the first file
// that is not a CRL file (the message names it), and on a directory without any file.
Result<std::vector<LoadedCrl>> readCrlItem(const std::string& path,
                                           OSSL_LIB_CTX* library = nullptr);

// The verify callback of a context that checks CRLs: lets exactly X509_V_ERR_CRL_HAS_EXPIRED
// pass when the site serving the SSL has crl_next_update lenient, and marks the SSL (see
// acceptedWithStaleCrl). Every other verdict is OpenSSL's own. A CRL past its nextUpdate still
// revokes the certificates it lists.
int verifyWithCrlPolicy(int ok, X509_STORE_CTX* store);

// True when the handshake of `ssl` accepted a client certificate only because of lenient
// crl_next_update (a CRL it was checked against is past its nextUpdate). Safe with null.
bool acceptedWithStaleCrl(SSL* ssl);

}  // namespace mqtls::tls

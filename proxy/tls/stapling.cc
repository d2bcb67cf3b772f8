#include "tls/stapling.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "tls/build_steps.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace {

using OcspResponsePtr = std::unique_ptr<OCSP_RESPONSE, OpenSslDeleter<OCSP_RESPONSE_free>>;
using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, OpenSslDeleter<OCSP_BASICRESP_free>>;
using OcspCertIdPtr = std::unique_ptr<OCSP_CERTID, OpenSslDeleter<OCSP_CERTID_free>>;
// A stack that borrows its certificates (frees the stack only).
void freeStackOnly(STACK_OF(X509) * stack) {
  sk_X509_free(stack);
}
using X509RefStackPtr = std::unique_ptr<STACK_OF(X509), OpenSslDeleter<freeStackOnly>>;

// The file's bytes; fails with a message naming it.
Result<std::vector<unsigned char>> readBytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Error{"'" + path + "' is a directory, not an OCSP response file"};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{"cannot read OCSP response file '" + path + "' (" + std::strerror(errno) + ")"};
  }
  std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (data.empty()) {
    return Error{"OCSP response file '" + path + "' is empty"};
  }
  return data;
}

// True if the single response's certificate id names `leaf` issued by `issuer`, under whatever
// hash the responder used.
bool idMatches(const OCSP_CERTID* id, X509* leaf, X509* issuer) {
  ASN1_OBJECT* md_oid = nullptr;
  if (OCSP_id_get0_info(nullptr, &md_oid, nullptr, nullptr, const_cast<OCSP_CERTID*>(id)) != 1) {
    return false;
  }
  const EVP_MD* md = EVP_get_digestbyobj(md_oid);
  OcspCertIdPtr expected(md != nullptr ? OCSP_cert_to_id(md, leaf, issuer) : nullptr);
  return expected && OCSP_id_cmp(expected.get(), id) == 0;
}

// Ok if `signer` may sign responses about certificates of `issuer`: it is the issuer itself, or
// a current certificate the issuer signed with the OCSP signing extended key usage.
Status signerAuthorized(X509* signer, X509* issuer, std::time_t now) {
  if (X509_cmp(signer, issuer) == 0 ||
      EVP_PKEY_eq(X509_get0_pubkey(signer), X509_get0_pubkey(issuer)) == 1) {
    return Status::success();
  }
  const bool issued = X509_check_issued(issuer, signer) == X509_V_OK &&
                      X509_verify(signer, X509_get0_pubkey(issuer)) == 1;
  const bool ocsp_signing = (X509_get_extension_flags(signer) & EXFLAG_XKUSAGE) != 0 &&
                            (X509_get_extended_key_usage(signer) & XKU_OCSP_SIGN) != 0;
  ERR_clear_error();
  if (!issued || !ocsp_signing) {
    return Status::failure("it is signed by '" + pem::subjectLine(signer) +
                           "', which is neither the server certificate's issuer nor an OCSP "
                           "responder that issuer authorized");
  }
  if (Status valid = pem::checkValidity(signer, now); !valid) {
    return Status::failure("its responder certificate: " + valid.error().message);
  }
  return Status::success();
}

// Finds the signer (in the response or `chain`), checks it may sign for `issuer`, and checks
// the signature.
Status checkSignature(OCSP_BASICRESP* basic, X509* issuer, STACK_OF(X509) * chain,
                      std::time_t now) {
  X509* signer = nullptr;
  if (OCSP_resp_get0_signer(basic, &signer, chain) != 1 || signer == nullptr) {
    ERR_clear_error();
    return Status::failure("its signer's certificate is neither in the response nor in 'cert'");
  }
  if (Status authorized = signerAuthorized(signer, issuer, now); !authorized) {
    return authorized;
  }
  X509RefStackPtr signers(sk_X509_new_null());
  X509StorePtr store(X509_STORE_new());
  if (!signers || !store || sk_X509_push(signers.get(), signer) <= 0) {
    return Status::failure("out of memory while checking it");
  }
  // The signer's authority was established above; this checks the signature alone.
  if (OCSP_basic_verify(basic, signers.get(), store.get(), OCSP_NOINTERN | OCSP_NOVERIFY) != 1) {
    return Status::failure("its signature does not verify (" + takeOpenSslError() + ")");
  }
  return Status::success();
}

// The status, times and id checks of the one single response.
Status checkSingle(OCSP_BASICRESP* basic, X509* leaf, X509* issuer, std::time_t now, Staple& out) {
  if (OCSP_resp_count(basic) != 1) {
    return Status::failure("it holds " + std::to_string(OCSP_resp_count(basic)) +
                           " single responses instead of one");
  }
  OCSP_SINGLERESP* single = OCSP_resp_get0(basic, 0);
  if (!idMatches(OCSP_SINGLERESP_get0_id(single), leaf, issuer)) {
    return Status::failure("it is not about the server certificate '" + pem::subjectLine(leaf) +
                           "' (serial and issuer differ)");
  }
  int reason = 0;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  out.cert_status =
      OCSP_single_get0_status(single, &reason, &revoked_at, &this_update, &next_update);
  if (out.cert_status < 0 || this_update == nullptr ||
      !detail::toEpoch(this_update, out.this_update)) {
    return Status::failure("its certificate status cannot be read");
  }
  constexpr std::time_t kClockSkew = 300;
  if (out.this_update > now + kClockSkew) {
    return Status::failure("its thisUpdate (" + detail::isoDate(this_update) +
                           ") is in the future");
  }
  out.has_next_update = next_update != nullptr;
  if (out.has_next_update && !detail::toEpoch(next_update, out.next_update)) {
    return Status::failure("its nextUpdate cannot be read");
  }
  return Status::success();
}

}  // namespace

Result<Staple> readStaple(const std::string& path, X509* leaf, X509* issuer, STACK_OF(X509) * chain,
                          std::time_t now) {
  auto bytes = readBytes(path);
  if (!bytes) {
    return bytes.error();
  }
  ERR_clear_error();
  const std::string where = "the OCSP response in '" + path + "'";
  const unsigned char* at = bytes->data();
  OcspResponsePtr response(d2i_OCSP_RESPONSE(nullptr, &at, static_cast<long>(bytes->size())));
  if (!response || at != bytes->data() + bytes->size()) {
    ERR_clear_error();
    return Error{"file '" + path + "' holds no DER OCSP response"};
  }
  const int status = OCSP_response_status(response.get());
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return Error{where + " has status '" + OCSP_response_status_str(status) +
                 "' instead of successful"};
  }
  OcspBasicPtr basic(OCSP_response_get1_basic(response.get()));
  if (!basic) {
    ERR_clear_error();
    return Error{where + " is not a basic OCSP response"};
  }
  Staple staple;
  if (Status single = checkSingle(basic.get(), leaf, issuer, now, staple); !single) {
    return Error{where + ": " + single.error().message};
  }
  if (Status signature = checkSignature(basic.get(), issuer, chain, now); !signature) {
    return Error{where + ": " + signature.error().message};
  }
  staple.der = std::move(*bytes);
  return staple;
}

}  // namespace mqtls::tls

namespace mqtls::tls::detail {
namespace {

void freeStaple(void*, void* staple, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<Staple*>(staple);
}

// The SSL_CTX slot holding the context's Staple (freed with the SSL_CTX). OpenSSL hands out
// ex_data indexes once per process.
int stapleSlot() {
  static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &freeStaple);
  return slot;
}

// Status request callback: sends a copy of the context's staple while it is current; a client
// gets no staple (but the handshake goes on) once it is past its nextUpdate.
int serveStaple(SSL* ssl, void*) {
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  const auto* staple =
      ctx != nullptr ? static_cast<const Staple*>(SSL_CTX_get_ex_data(ctx, stapleSlot())) : nullptr;
  if (staple == nullptr || (staple->has_next_update && staple->next_update < std::time(nullptr))) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  X509* served = SSL_get_certificate(ssl);
  if (staple->leaf && (served == nullptr || X509_cmp(served, staple->leaf.get()) != 0)) {
    return SSL_TLSEXT_ERR_NOACK;  // another certificate of this context was chosen
  }
  auto* copy = static_cast<unsigned char*>(OPENSSL_memdup(staple->der.data(), staple->der.size()));
  if (copy == nullptr) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(staple->der.size())) != 1) {
    OPENSSL_free(copy);
    return SSL_TLSEXT_ERR_NOACK;
  }
  return SSL_TLSEXT_ERR_OK;  // OpenSSL owns and frees `copy`
}

constexpr const char* kStapleFix =
    "point 'ocsp_staple' at a current DER OCSP response for the server certificate (e.g. "
    "openssl ocsp -issuer <issuer> -cert <server certificate> -url <responder> -respout <file>)";

}  // namespace

void installOcspStaple(SSL_CTX* ctx, const config::TlsSettings& settings, BuildReport& report) {
  const std::string& file = settings.ocsp_staple_file;
  if (file.empty()) {
    return;
  }
  auto chain = pem::readCertificates(settings.cert_file);
  if (!chain) {
    return;  // installServerIdentity reports the certificate file
  }
  if (chain->size() < 2) {
    addError(report, "ocsp_staple",
             "the OCSP response in '" + file + "' cannot be checked: '" + settings.cert_file +
                 "' holds only the server certificate; append its issuer's certificate to it");
    return;
  }
  X509RefStackPtr certs(sk_X509_new_null());
  for (auto& cert : *chain) {
    sk_X509_push(certs.get(), cert.get());
  }
  const std::time_t now = std::time(nullptr);
  auto staple = readStaple(file, (*chain)[0].get(), (*chain)[1].get(), certs.get(), now);
  if (!staple) {
    addError(report, "ocsp_staple", staple.error().message + "; " + kStapleFix);
    return;
  }
  const std::string where = "the OCSP response in '" + file + "'";
  if (staple->has_next_update && staple->next_update < now) {
    report.warnings.push_back(SettingProblem{
        "ocsp_staple", where + " is past its nextUpdate, so it is not stapled; " + kStapleFix});
    return;
  }
  if (staple->cert_status != V_OCSP_CERTSTATUS_GOOD) {
    report.warnings.push_back(SettingProblem{
        "ocsp_staple", where + " says the server certificate is " +
                           OCSP_cert_status_str(staple->cert_status) +
                           " (stapled as it is: clients that check it refuse the server); "
                           "replace the server certificate"});
  }
  X509_up_ref((*chain)[0].get());
  staple->leaf.reset((*chain)[0].get());
  auto* held = new Staple(std::move(*staple));
  if (SSL_CTX_set_ex_data(ctx, stapleSlot(), held) != 1) {
    delete held;
    addError(report, "ocsp_staple", "cannot attach " + where + " (out of memory)");
    return;
  }
  SSL_CTX_set_tlsext_status_cb(ctx, &serveStaple);
}

}  // namespace mqtls::tls::detail

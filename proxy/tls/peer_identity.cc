#include "tls/peer_identity.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cstdio>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "util/openssl_ptr.h"
#include "util/utf8.h"

namespace mqtls::tls {
namespace {

std::string asn1StringToUtf8(const ASN1_STRING* value, bool& clean) {
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0) {
    clean = false;
    return {};
  }
  std::string text(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  if (!utf8::isValid(text, utf8::kCertificate)) {
    clean = false;
  }
  return text;
}

// The RFC 2253 form of `name`, or nullopt when it does not print completely (OpenSSL stops
// half-way through, e.g. at a string that is not valid in its declared type) or prints with
// anything but clean UTF-8 (invalid sequences, NUL, C0/C1 controls, DEL).
std::optional<std::string> nameToRfc2253(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    return std::nullopt;
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len < 0 || (len > 0 && data == nullptr)) {
    return std::nullopt;
  }
  std::string text(data, static_cast<std::size_t>(len));
  if (!utf8::isValid(text, utf8::kCertificate)) {
    return std::nullopt;
  }
  return text;
}

std::string lastCommonName(const X509_NAME* name, bool& clean) {
  std::string cn;
  int index = -1;
  while ((index = X509_NAME_get_index_by_NID(name, NID_commonName, index)) >= 0) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, index);
    cn = asn1StringToUtf8(X509_NAME_ENTRY_get_data(entry), clean);
  }
  return cn;
}

std::string ipToText(const ASN1_OCTET_STRING* ip) {
  char text[INET6_ADDRSTRLEN] = {};
  const unsigned char* data = ASN1_STRING_get0_data(ip);
  int len = ASN1_STRING_length(ip);
  if (len == 4) {
    inet_ntop(AF_INET, data, text, sizeof text);
  } else if (len == 16) {
    inet_ntop(AF_INET6, data, text, sizeof text);
  }
  return text;
}

void readSubjectAltNames(X509* leaf, PeerIdentity& identity, bool& clean) {
  using NamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;
  NamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) {
    return;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    switch (name->type) {
      case GEN_DNS:
        identity.san_dns.push_back(asn1StringToUtf8(name->d.dNSName, clean));
        break;
      case GEN_URI:
        identity.san_uri.push_back(asn1StringToUtf8(name->d.uniformResourceIdentifier, clean));
        break;
      case GEN_EMAIL:
        identity.san_email.push_back(asn1StringToUtf8(name->d.rfc822Name, clean));
        break;
      case GEN_IPADD:
        identity.san_ip.push_back(ipToText(name->d.iPAddress));
        break;
      default:
        break;
    }
  }
  for (const auto& uri : identity.san_uri) {
    if (uri.starts_with("spiffe://")) {
      identity.spiffe_id = uri;
      break;
    }
  }
}

std::string serialHex(X509* leaf) {
  using BnPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
  BnPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), nullptr));
  if (!bn) {
    return {};
  }
  char* hex = BN_bn2hex(bn.get());
  std::string text = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  return text;
}

std::int64_t unixTime(const ASN1_TIME* time) {
  struct tm parts = {};
  if (ASN1_TIME_to_tm(time, &parts) != 1) {
    return 0;
  }
  return static_cast<std::int64_t>(timegm(&parts));
}

}  // namespace

Result<PeerIdentity> extractPeerIdentity(X509* leaf) {
  PeerIdentity identity;
  bool clean = true;
  identity.common_name = lastCommonName(X509_get_subject_name(leaf), clean);
  auto subject = nameToRfc2253(X509_get_subject_name(leaf));
  auto issuer = nameToRfc2253(X509_get_issuer_name(leaf));
  if (!subject || !issuer) {
    return Error{std::string("client certificate ") + (subject ? "issuer" : "subject") +
                 " name does not print as clean UTF-8 (invalid string or control character)"};
  }
  identity.subject_dn = std::move(*subject);
  identity.issuer_dn = std::move(*issuer);
  identity.serial_hex = serialHex(leaf);
  readSubjectAltNames(leaf, identity, clean);
  if (!clean) {
    return Error{"client certificate holds a name that is not clean UTF-8"};
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(leaf, EVP_sha256(), digest, &digest_len) != 1) {
    return Error{"cannot compute the client certificate fingerprint"};
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < digest_len; ++i) {
    identity.fingerprint_sha256.push_back(kHex[digest[i] >> 4]);
    identity.fingerprint_sha256.push_back(kHex[digest[i] & 0xF]);
  }
  identity.not_before = unixTime(X509_get0_notBefore(leaf));
  identity.not_after = unixTime(X509_get0_notAfter(leaf));
  return identity;
}

namespace {

// What the session slot holds: the identity and the certificate it was extracted from (a
// session copy shares that X509 object, so the pointer says the identity is still its own).
struct KeptIdentity {
  std::shared_ptr<const PeerIdentity> identity;
  const X509* leaf = nullptr;
};

// OpenSSL copies a session's slots when it renews the session: the copy shares the identity.
int copyKeptIdentity(CRYPTO_EX_DATA*, const CRYPTO_EX_DATA*, void** from, int, long, void*) {
  if (*from != nullptr) {
    *from = new (std::nothrow) KeptIdentity(*static_cast<KeptIdentity*>(*from));
  }
  return 1;  // out of memory: the copy keeps nothing and its resumption extracts again
}

void freeKeptIdentity(void*, void* kept, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<KeptIdentity*>(kept);
}

int keptIdentityIndex() {
  static const int index =
      SSL_SESSION_get_ex_new_index(0, nullptr, nullptr, copyKeptIdentity, freeKeptIdentity);
  return index;
}

}  // namespace

void keepPeerIdentity(SSL_SESSION* session) {
  X509* leaf = SSL_SESSION_get0_peer(session);
  if (leaf == nullptr || keptIdentityIndex() < 0 || keptPeerIdentity(session) != nullptr) {
    return;
  }
  auto extracted = extractPeerIdentity(leaf);
  if (!extracted) {
    return;
  }
  auto kept = std::make_unique<KeptIdentity>(
      KeptIdentity{std::make_shared<const PeerIdentity>(std::move(extracted.value())), leaf});
  delete static_cast<KeptIdentity*>(SSL_SESSION_get_ex_data(session, keptIdentityIndex()));
  if (SSL_SESSION_set_ex_data(session, keptIdentityIndex(), kept.get()) == 1) {
    kept.release();  // freed with the session by freeKeptIdentity
  } else {
    SSL_SESSION_set_ex_data(session, keptIdentityIndex(), nullptr);
  }
}

std::shared_ptr<const PeerIdentity> keptPeerIdentity(const SSL_SESSION* session) {
  if (session == nullptr || keptIdentityIndex() < 0) {
    return nullptr;
  }
  const auto* kept =
      static_cast<const KeptIdentity*>(SSL_SESSION_get_ex_data(session, keptIdentityIndex()));
  if (kept == nullptr || kept->leaf != SSL_SESSION_get0_peer(const_cast<SSL_SESSION*>(session))) {
    return nullptr;
  }
  return kept->identity;
}

}  // namespace mqtls::tls

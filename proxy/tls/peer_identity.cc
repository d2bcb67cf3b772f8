#include "tls/peer_identity.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cstdio>
#include <memory>

#include "util/openssl_ptr.h"

namespace mqtls::tls {
namespace {

// True if `text` is well-formed UTF-8 with no NUL, C0, DEL or C1 control characters.
bool isCleanUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    auto lead = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    if (lead < 0x80) {
      if (lead < 0x20 || lead == 0x7F) {
        return false;
      }
    } else if (lead == 0xC2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      return false;  // U+0080..U+009F: C1 control characters
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      extra = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      extra = 2;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      extra = 3;
    } else {
      return false;
    }
    if (i + extra >= text.size() && extra > 0) {
      return false;
    }
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) {
        return false;
      }
    }
    i += extra + 1;
  }
  return true;
}

std::string asn1StringToUtf8(const ASN1_STRING* value, bool& clean) {
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0) {
    clean = false;
    return {};
  }
  std::string text(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  if (!isCleanUtf8(text)) {
    clean = false;
  }
  return text;
}

std::string nameToRfc2253(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
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
  identity.subject_dn = nameToRfc2253(X509_get_subject_name(leaf));
  identity.issuer_dn = nameToRfc2253(X509_get_issuer_name(leaf));
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

}  // namespace mqtls::tls

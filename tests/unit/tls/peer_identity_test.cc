// Identity extraction from the certificates certs/gen.sh makes.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "tls/peer_identity.h"
#include "util/openssl_ptr.h"
#include "util/pem.h"

namespace mqtls::tls {
namespace {

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

PeerIdentity identityOf(const std::string& file) {
  auto certs = pem::readCertificates(certPath(file));
  EXPECT_TRUE(certs.ok()) << (certs.ok() ? "" : certs.error().message);
  auto identity = extractPeerIdentity(certs->front().get());
  EXPECT_TRUE(identity.ok());
  return identity.value();
}

TEST(PeerIdentity, DeviceCertificateFields) {
  PeerIdentity id = identityOf("client.pem");
  EXPECT_EQ(id.common_name, "device-001");
  EXPECT_EQ(id.subject_dn, "CN=device-001,O=mqtls test");
  EXPECT_EQ(id.issuer_dn, "CN=mqtls Test Intermediate CA,O=mqtls test");
  ASSERT_EQ(id.san_uri.size(), 1u);
  EXPECT_EQ(id.san_uri[0], "spiffe://mqtls.test/device/device-001");
  ASSERT_TRUE(id.spiffe_id.has_value());
  EXPECT_EQ(*id.spiffe_id, "spiffe://mqtls.test/device/device-001");
  ASSERT_EQ(id.san_dns.size(), 1u);
  EXPECT_EQ(id.san_dns[0], "device-001.devices.mqtls.test");
  ASSERT_EQ(id.san_email.size(), 1u);
  EXPECT_EQ(id.san_email[0], "device-001@mqtls.test");
  EXPECT_EQ(id.fingerprint_sha256.size(), 64u);
  EXPECT_EQ(id.fingerprint_sha256.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_FALSE(id.serial_hex.empty());
  EXPECT_LE(id.not_before, static_cast<std::int64_t>(std::time(nullptr)));
  EXPECT_GT(id.not_after, static_cast<std::int64_t>(std::time(nullptr)));
}

// The whole fingerprint, against the openssl command line's own computation of it.
TEST(PeerIdentity, FingerprintMatchesOpenSslCommandLine) {
  const std::string command =
      "openssl x509 -noout -fingerprint -sha256 -in '" + certPath("client.pem") + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  ASSERT_NE(pipe, nullptr);
  char line[256] = {};
  ASSERT_NE(std::fgets(line, sizeof line, pipe.get()), nullptr);
  // "sha256 Fingerprint=AB:CD:...": keep the hex digits, lower-cased.
  const std::string output = line;
  const auto equals = output.find('=');
  ASSERT_NE(equals, std::string::npos) << output;
  std::string expected;
  for (char c : output.substr(equals + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      expected += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  ASSERT_EQ(expected.size(), 64u) << output;
  EXPECT_EQ(identityOf("client.pem").fingerprint_sha256, expected);
}

TEST(PeerIdentity, CertificateWithoutCommonName) {
  PeerIdentity id = identityOf("client-nocn.pem");
  EXPECT_TRUE(id.common_name.empty());
  ASSERT_TRUE(id.spiffe_id.has_value());
  EXPECT_EQ(*id.spiffe_id, "spiffe://mqtls.test/device/device-nocn");
}

TEST(PeerIdentity, ServerCertificateIpSans) {
  PeerIdentity id = identityOf("server-ec.pem");
  EXPECT_EQ(id.common_name, "localhost");
  ASSERT_EQ(id.san_ip.size(), 2u);
  EXPECT_EQ(id.san_ip[0], "127.0.0.1");
  EXPECT_EQ(id.san_ip[1], "::1");
  EXPECT_FALSE(id.spiffe_id.has_value());
}

TEST(PeerIdentity, DistinctDevicesDistinctFingerprints) {
  EXPECT_NE(identityOf("client.pem").fingerprint_sha256,
            identityOf("client2.pem").fingerprint_sha256);
  EXPECT_EQ(identityOf("client2.pem").common_name, "device-002");
}

TEST(PeerIdentity, ControlCharacterInCommonNameIsRefused) {
  X509Ptr cert(X509_new());
  X509_NAME* name = X509_get_subject_name(cert.get());
  const unsigned char evil[] = "device\n-001";
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, evil, -1, -1, 0);
  auto identity = extractPeerIdentity(cert.get());
  EXPECT_FALSE(identity.ok());
}

// A complete self-signed certificate whose subject gets `entries` (NID, type, bytes) in order;
// `type` is an MBSTRING_* flag (converted) or a V_ASN1_* string type (bytes stored as given).
struct NameEntry {
  int nid;
  int type;
  std::string bytes;
};

X509Ptr certificateWithSubject(const std::vector<NameEntry>& entries) {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) {
    return nullptr;
  }
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 42);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& entry : entries) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(entry.bytes.data());
    if (X509_NAME_add_entry_by_NID(name, entry.nid, entry.type, bytes,
                                   static_cast<int>(entry.bytes.size()), -1, 0) != 1) {
      return nullptr;
    }
  }
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return nullptr;
  }
  return cert;
}

TEST(PeerIdentity, BuiltCertificateWithACleanSubjectIsAccepted) {
  auto cert = certificateWithSubject({{NID_organizationName, MBSTRING_UTF8, "Acme \xC3\xA9"},
                                      {NID_commonName, MBSTRING_UTF8, "device-001"}});
  ASSERT_NE(cert, nullptr);
  auto identity = extractPeerIdentity(cert.get());
  ASSERT_TRUE(identity.ok()) << identity.error().message;
  EXPECT_EQ(identity->common_name, "device-001");
  EXPECT_EQ(identity->subject_dn, "CN=device-001,O=Acme \xC3\xA9");
}

// The CN is clean, so only the printed DN can catch these C1 controls (OpenSSL prints bytes
// above 0x7F raw, as UTF-8).
TEST(PeerIdentity, ControlCharacterElsewhereInTheSubjectRefusesTheIdentity) {
  for (const std::string organization : {"Acme\xC2\x85"
                                         "Corp",
                                         "Acme\xC2\x9B"}) {
    auto cert = certificateWithSubject({{NID_organizationName, MBSTRING_UTF8, organization},
                                        {NID_commonName, MBSTRING_UTF8, "device-001"}});
    ASSERT_NE(cert, nullptr);
    auto identity = extractPeerIdentity(cert.get());
    ASSERT_FALSE(identity.ok()) << identity->subject_dn;
    EXPECT_NE(identity.error().message.find("subject"), std::string::npos)
        << identity.error().message;
  }
}

// C0 controls and DEL are printed as RFC 2253 escapes, never raw: the DN stays clean text.
TEST(PeerIdentity, AsciiControlsInTheSubjectPrintEscaped) {
  auto cert = certificateWithSubject({{NID_organizationName, MBSTRING_UTF8, "a\nb\x7F"},
                                      {NID_commonName, MBSTRING_UTF8, "device-001"}});
  ASSERT_NE(cert, nullptr);
  auto identity = extractPeerIdentity(cert.get());
  ASSERT_TRUE(identity.ok()) << identity.error().message;
  EXPECT_EQ(identity->subject_dn, "CN=device-001,O=a\\0Ab\\7F");
}

// OpenSSL stops printing at a string that is not valid in its type: what it printed so far is a
// truncated DN that must not become an identity.
TEST(PeerIdentity, SubjectThatFailsToPrintRefusesTheIdentity) {
  auto cert = certificateWithSubject({{NID_organizationName, V_ASN1_UTF8STRING, "bad\xFF\xFE"},
                                      {NID_commonName, MBSTRING_UTF8, "device-001"}});
  ASSERT_NE(cert, nullptr);
  auto identity = extractPeerIdentity(cert.get());
  ASSERT_FALSE(identity.ok()) << identity->subject_dn;
}

// A long DN prints whole: nothing in the path cuts it.
TEST(PeerIdentity, LongSubjectPrintsWhole) {
  std::vector<NameEntry> entries;
  std::string expected = "CN=device-001";
  for (int i = 0; i < 40; ++i) {
    const std::string unit = "unit-" + std::to_string(i) + "-" + std::string(50, 'u');
    entries.push_back({NID_organizationalUnitName, MBSTRING_UTF8, unit});
    expected.insert(std::string("CN=device-001").size(), ",OU=" + unit);
  }
  entries.push_back({NID_commonName, MBSTRING_UTF8, "device-001"});
  auto cert = certificateWithSubject(entries);
  ASSERT_NE(cert, nullptr);
  auto identity = extractPeerIdentity(cert.get());
  ASSERT_TRUE(identity.ok()) << identity.error().message;
  EXPECT_GT(identity->subject_dn.size(), 2000u);
  EXPECT_EQ(identity->subject_dn, expected);
}

}  // namespace
}  // namespace mqtls::tls

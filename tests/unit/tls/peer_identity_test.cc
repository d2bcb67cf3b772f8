// Identity extraction from the certificates certs/gen.sh makes.
#include <gtest/gtest.h>

#include <ctime>

#include "tls/peer_identity.h"
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

TEST(PeerIdentity, FingerprintMatchesOpenSslDigest) {
  auto certs = pem::readCertificates(certPath("client.pem"));
  ASSERT_TRUE(certs.ok());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_EQ(X509_digest(certs->front().get(), EVP_sha256(), digest, &len), 1);
  char first[3];
  std::snprintf(first, sizeof first, "%02x", digest[0]);
  EXPECT_EQ(identityOf("client.pem").fingerprint_sha256.substr(0, 2), first);
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

}  // namespace
}  // namespace mqtls::tls

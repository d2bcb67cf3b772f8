// OCSP requests and responses (tls/ocsp.h), the answer cache (tls/ocsp_cache.h) and the
// tls.ocsp configuration section. Responses are made with OpenSSL's own OCSP responder API, signed
// by a CA made in the test, a responder it delegated to, or a CA it did not.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "config/loader.h"
#include "tls/ocsp.h"
#include "tls/ocsp_cache.h"

namespace mqtls::tls {
namespace {

using namespace std::chrono_literals;

// A certificate and its key.
struct Issued {
  X509Ptr cert;
  EvpPkeyPtr key;
};

void addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A P-256 certificate CN=`cn` valid from a minute ago for `lifetime` seconds, signed by
// `issuer` (self-signed when null); a CA when `ca`; with the extended key usage `eku` and the
// authorityInfoAccess `aia` when given.
Issued issue(const char* cn, const Issued* issuer, bool ca, long lifetime,
             const char* eku = nullptr, const char* aia = nullptr) {
  static long serial = 1000;
  Issued out{X509Ptr(X509_new()), EvpPkeyPtr(EVP_EC_gen("P-256"))};
  X509* cert = out.cert.get();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), lifetime);
  X509_set_pubkey(cert, out.key.get());
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer->cert.get() : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(signer));
  addExtension(cert, signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  addExtension(cert, signer, NID_key_usage,
               ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature");
  addExtension(cert, signer, NID_subject_key_identifier, "hash");
  if (eku != nullptr) {
    addExtension(cert, signer, NID_ext_key_usage, eku);
  }
  if (aia != nullptr) {
    addExtension(cert, signer, NID_info_access, aia);
  }
  X509_sign(cert, issuer != nullptr ? issuer->key.get() : out.key.get(), EVP_sha256());
  return out;
}

using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, OpenSslDeleter<OCSP_BASICRESP_free>>;

struct ResponseSpec {
  int status = V_OCSP_CERTSTATUS_GOOD;
  long this_update = -60;          // seconds from now
  long next_update = 7200;         // seconds from now; 0: none
  const Issued* signer = nullptr;  // null: the issuing CA
  bool copy_nonce = true;
  bool wrong_nonce = false;
  int response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
  bool with_signer = true;  // false: the signer certificate is left out (the issuer signed)
};

class OcspTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = issue("OCSP Test CA", nullptr, true, 86400);
    other_ca_ = issue("Other CA", nullptr, true, 86400);
    leaf_ = issue("device-1", &ca_, false, 86400);
    delegate_ = issue("ocsp responder", &ca_, false, 86400, "OCSPSigning");
    store_.reset(X509_STORE_new());
    X509_STORE_add_cert(store_.get(), ca_.cert.get());
    X509_STORE_add_cert(store_.get(), other_ca_.cert.get());
    auto query = buildOcspQuery(leaf_.cert.get(), ca_.cert.get());
    ASSERT_TRUE(query.ok()) << query.error().message;
    query_ = std::move(query.value());
  }

  // A DER response about leaf_ as `spec` says.
  std::vector<std::uint8_t> respond(const ResponseSpec& spec) {
    if (spec.response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
      OCSP_RESPONSE* response = OCSP_response_create(spec.response_status, nullptr);
      return encode(response);
    }
    OcspBasicPtr basic(OCSP_BASICRESP_new());
    OCSP_CERTID* id = OCSP_cert_to_id(nullptr, leaf_.cert.get(), ca_.cert.get());
    ASN1_TIME* this_update = X509_gmtime_adj(nullptr, spec.this_update);
    ASN1_TIME* next_update =
        spec.next_update != 0 ? X509_gmtime_adj(nullptr, spec.next_update) : nullptr;
    ASN1_TIME* revoked =
        spec.status == V_OCSP_CERTSTATUS_REVOKED ? X509_gmtime_adj(nullptr, -3600) : nullptr;
    EXPECT_NE(OCSP_basic_add1_status(basic.get(), id, spec.status,
                                     revoked != nullptr ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : -1,
                                     revoked, this_update, next_update),
              nullptr);
    if (spec.wrong_nonce) {
      OCSP_basic_add1_nonce(basic.get(), nullptr, -1);
    } else if (spec.copy_nonce) {
      OCSP_copy_nonce(basic.get(), query_.request.get());
    }
    const Issued& signer = spec.signer != nullptr ? *spec.signer : ca_;
    EXPECT_EQ(OCSP_basic_sign(basic.get(), signer.cert.get(), signer.key.get(), EVP_sha256(),
                              nullptr, spec.with_signer ? 0 : OCSP_NOCERTS),
              1);
    OCSP_CERTID_free(id);
    ASN1_TIME_free(this_update);
    ASN1_TIME_free(next_update);
    ASN1_TIME_free(revoked);
    return encode(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  }

  OcspAnswer check(const std::vector<std::uint8_t>& der) {
    return checkOcspResponse(der, query_, store_.get(), ca_.cert.get(), leaf_.cert.get());
  }

  static std::vector<std::uint8_t> encode(OCSP_RESPONSE* response) {
    std::vector<std::uint8_t> der(static_cast<std::size_t>(i2d_OCSP_RESPONSE(response, nullptr)));
    unsigned char* p = der.data();
    i2d_OCSP_RESPONSE(response, &p);
    OCSP_RESPONSE_free(response);
    return der;
  }

  Issued ca_, other_ca_, leaf_, delegate_;
  X509StorePtr store_;
  OcspQuery query_;
};

TEST_F(OcspTest, RequestNamesTheCertificateAndCarriesANonce) {
  const unsigned char* p = query_.request_der.data();
  std::unique_ptr<OCSP_REQUEST, OpenSslDeleter<OCSP_REQUEST_free>> decoded(
      d2i_OCSP_REQUEST(nullptr, &p, static_cast<long>(query_.request_der.size())));
  ASSERT_TRUE(decoded);
  ASSERT_EQ(OCSP_request_onereq_count(decoded.get()), 1);
  OCSP_CERTID* id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(decoded.get(), 0));
  EXPECT_EQ(OCSP_id_cmp(id, query_.id.get()), 0);
  EXPECT_GE(OCSP_REQUEST_get_ext_by_NID(decoded.get(), NID_id_pkix_OCSP_Nonce, -1), 0);
  EXPECT_FALSE(query_.id_der.empty());

  auto without = buildOcspQuery(leaf_.cert.get(), ca_.cert.get(), false);
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(without->id_der, query_.id_der);  // same certificate, same cache key
  EXPECT_LT(without->request_der.size(), query_.request_der.size());
}

TEST_F(OcspTest, GoodAnswerKeptUntilNextUpdate) {
  auto answer = check(respond({}));
  EXPECT_EQ(answer.status, OcspStatus::Good) << answer.reason;
  EXPECT_GT(answer.keep_for, 7100s);
  EXPECT_LE(answer.keep_for, 7200s);
}

TEST_F(OcspTest, RevokedAnswerGivesTheReason) {
  auto answer = check(respond({.status = V_OCSP_CERTSTATUS_REVOKED}));
  EXPECT_EQ(answer.status, OcspStatus::Revoked);
  EXPECT_NE(answer.reason.find("keyCompromise"), std::string::npos) << answer.reason;
}

TEST_F(OcspTest, UnknownAnswer) {
  EXPECT_EQ(check(respond({.status = V_OCSP_CERTSTATUS_UNKNOWN})).status, OcspStatus::Unknown);
}

TEST_F(OcspTest, DelegatedResponderAccepted) {
  auto answer = check(respond({.signer = &delegate_}));
  EXPECT_EQ(answer.status, OcspStatus::Good) << answer.reason;
}

TEST_F(OcspTest, SignatureOfAnotherCaRefused) {
  // other_ca_ is trusted, but it did not issue the certificate: not an authorized responder.
  auto answer = check(respond({.signer = &other_ca_}));
  EXPECT_EQ(answer.status, OcspStatus::Invalid);
  EXPECT_NE(answer.reason.find("signature"), std::string::npos) << answer.reason;
  // A responder certificate the issuer gave no OCSPSigning right is refused as well.
  Issued plain = issue("not a responder", &ca_, false, 86400);
  EXPECT_EQ(check(respond({.signer = &plain})).status, OcspStatus::Invalid);
  // And a signer nobody trusts.
  Issued stranger = issue("stranger", nullptr, true, 86400);
  EXPECT_EQ(check(respond({.signer = &stranger})).status, OcspStatus::Invalid);
}

TEST_F(OcspTest, TamperedResponseRefused) {
  auto intact = respond({.status = V_OCSP_CERTSTATUS_REVOKED, .with_signer = false});
  EXPECT_EQ(check(intact).status, OcspStatus::Revoked);  // the signer is found as the issuer
  auto der = intact;
  der[der.size() - 10] ^= 0x01;  // inside the signature, the last field without certificates
  EXPECT_EQ(check(der).status, OcspStatus::Invalid);
}

TEST_F(OcspTest, ExpiredNextUpdateRefused) {
  auto answer = check(respond({.this_update = -2 * 86400, .next_update = -86400}));
  EXPECT_EQ(answer.status, OcspStatus::Invalid);
  EXPECT_NE(answer.reason.find("nextUpdate"), std::string::npos) << answer.reason;
  EXPECT_EQ(answer.keep_for, 0s);
}

TEST_F(OcspTest, FutureThisUpdateRefused) {
  EXPECT_EQ(check(respond({.this_update = 3600, .next_update = 7200})).status, OcspStatus::Invalid);
}

TEST_F(OcspTest, WithoutNextUpdateKeptForTheDefault) {
  auto answer = check(respond({.next_update = 0}));
  EXPECT_EQ(answer.status, OcspStatus::Good) << answer.reason;
  EXPECT_EQ(answer.keep_for, kDefaultOcspKeep);
}

TEST_F(OcspTest, NeverKeptPastTheCertificate) {
  leaf_ = issue("device-short", &ca_, false, 600);
  auto query = buildOcspQuery(leaf_.cert.get(), ca_.cert.get());
  ASSERT_TRUE(query.ok());
  query_ = std::move(query.value());
  auto answer = check(respond({.next_update = 86400}));
  EXPECT_EQ(answer.status, OcspStatus::Good) << answer.reason;
  EXPECT_LE(answer.keep_for, 600s);
  EXPECT_GT(answer.keep_for, 500s);
}

TEST_F(OcspTest, NonceMismatchRefusedMissingNonceAccepted) {
  EXPECT_EQ(check(respond({.wrong_nonce = true})).status, OcspStatus::Invalid);
  EXPECT_EQ(check(respond({.copy_nonce = false})).status, OcspStatus::Good);
}

TEST_F(OcspTest, UnsuccessfulOrGarbageResponsesRefused) {
  auto answer = check(respond({.response_status = OCSP_RESPONSE_STATUS_TRYLATER}));
  EXPECT_EQ(answer.status, OcspStatus::Invalid);
  EXPECT_NE(answer.reason.find("trylater"), std::string::npos) << answer.reason;
  const std::vector<std::uint8_t> garbage{0x30, 0x03, 0x0a, 0x01};
  EXPECT_EQ(check(garbage).status, OcspStatus::Invalid);
  EXPECT_EQ(check({}).status, OcspStatus::Invalid);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(OcspTest, AnswerForAnotherCertificateRefused) {
  Issued sibling = issue("device-2", &ca_, false, 86400);
  auto query = buildOcspQuery(sibling.cert.get(), ca_.cert.get(), false);
  ASSERT_TRUE(query.ok());
  auto answer = checkOcspResponse(respond({.copy_nonce = false}), *query, store_.get(),
                                  ca_.cert.get(), sibling.cert.get());
  EXPECT_EQ(answer.status, OcspStatus::Invalid);
}

TEST_F(OcspTest, ResponderUrlFromAuthorityInformationAccess) {
  Issued with_aia = issue("device-aia", &ca_, false, 86400, nullptr,
                          "OCSP;URI:https://secure.example/,OCSP;URI:http://127.0.0.1:9/ocsp");
  EXPECT_EQ(ocspUrlOf(with_aia.cert.get()), "http://127.0.0.1:9/ocsp");
  EXPECT_EQ(ocspUrlOf(leaf_.cert.get()), "");
}

TEST_F(OcspTest, IssuerFromChainOrStore) {
  X509StackPtr chain(sk_X509_new_null());
  X509_up_ref(leaf_.cert.get());
  sk_X509_push(chain.get(), leaf_.cert.get());
  X509_up_ref(other_ca_.cert.get());
  sk_X509_push(chain.get(), other_ca_.cert.get());
  EXPECT_EQ(
      X509_cmp(findIssuer(leaf_.cert.get(), chain.get(), store_.get()).get(), other_ca_.cert.get()),
      0);  // the verified chain is taken as it is
  EXPECT_EQ(X509_cmp(findIssuer(leaf_.cert.get(), nullptr, store_.get()).get(), ca_.cert.get()), 0);
  Issued stranger = issue("stranger", nullptr, true, 86400);
  Issued orphan = issue("orphan", &stranger, false, 86400);
  EXPECT_FALSE(findIssuer(orphan.cert.get(), nullptr, store_.get()));
  EXPECT_FALSE(findIssuer(ca_.cert.get(), nullptr, store_.get()));  // self-signed
}

// ----------------------------------------------------------------------------------------------

OcspAnswer answer(OcspStatus status, std::chrono::seconds keep) {
  return OcspAnswer{status, "test", keep};
}

TEST(OcspCacheTest, KeepsAnswersUntilTheirTime) {
  OcspCache cache(10);
  const auto t0 = OcspCache::Clock::now();
  cache.store("a", answer(OcspStatus::Revoked, 60s), t0);
  ASSERT_TRUE(cache.find("a", t0 + 59s));
  EXPECT_EQ(cache.find("a", t0 + 59s)->status, OcspStatus::Revoked);
  EXPECT_FALSE(cache.find("a", t0 + 60s));
  EXPECT_EQ(cache.size(), 0u);  // the expired entry was dropped
  EXPECT_FALSE(cache.find("b", t0));
}

TEST(OcspCacheTest, OnlyDefiniteAnswersAreKept) {
  OcspCache cache(10);
  cache.store("invalid", answer(OcspStatus::Invalid, 60s));
  cache.store("no time", answer(OcspStatus::Good, 0s));
  cache.store("unknown", answer(OcspStatus::Unknown, 60s));
  EXPECT_FALSE(cache.find("invalid"));
  EXPECT_FALSE(cache.find("no time"));
  EXPECT_TRUE(cache.find("unknown"));
  OcspCache none(0);
  none.store("a", answer(OcspStatus::Good, 60s));
  EXPECT_FALSE(none.find("a"));
}

TEST(OcspCacheTest, LeastRecentlyUsedGoesFirst) {
  OcspCache cache(3);
  for (const char* key : {"a", "b", "c"}) {
    cache.store(key, answer(OcspStatus::Good, 60s));
  }
  EXPECT_TRUE(cache.find("a"));  // a is now the most recently used; b the least
  cache.store("d", answer(OcspStatus::Good, 60s));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.find("b"));
  EXPECT_TRUE(cache.find("a"));
  EXPECT_TRUE(cache.find("c"));
  EXPECT_TRUE(cache.find("d"));
  cache.store("d", answer(OcspStatus::Revoked, 60s));  // replaces, no growth
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.find("d")->status, OcspStatus::Revoked);
}

// Every worker's thread stores and finds answers in the one cache at once (scripts/tsan.sh runs
// this under ThreadSanitizer): each thread finds its own answer unless it was evicted, and the
// cache never grows past its capacity.
TEST(OcspCacheTest, IsSharedSafelyBetweenThreads) {
  OcspCache cache(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      const auto status = t % 2 == 0 ? OcspStatus::Good : OcspStatus::Revoked;
      for (int i = 0; i < 200; ++i) {
        const std::string key = OcspCache::key(std::to_string(t), std::to_string(i % 20));
        cache.store(key, answer(status, 60s));
        if (auto found = cache.find(key)) {
          EXPECT_EQ(found->status, status);
        }
        EXPECT_LE(cache.size(), cache.capacity());
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(cache.size(), cache.capacity());
}

TEST(OcspCacheTest, KeyTellsResponderUrlsApart) {
  EXPECT_NE(OcspCache::key("id", "http://a/"), OcspCache::key("id", "http://b/"));
}

// ----------------------------------------------------------------------------------------------

constexpr const char* kListener = R"(listeners:
  - port: 8883
    tls:
      cert: server.pem
      key: server.key
      client_ca: ca.pem
)";

config::LoadResult loadWithOcsp(const std::string& tls_extra) {
  return config::loadConfigText(std::string(kListener) + tls_extra, "test.yaml", "/tmp");
}

std::string errors(const config::LoadResult& result) {
  std::string text;
  for (const auto& error : result.errors) {
    text += error + "\n";
  }
  return text;
}

TEST(OcspConfigTest, DefaultsAndValues) {
  auto plain = loadWithOcsp("");
  ASSERT_TRUE(plain.ok()) << errors(plain);
  EXPECT_EQ(plain.config->listeners[0].tls.ocsp.mode, config::OcspMode::Off);
  auto set = loadWithOcsp(
      "      ocsp: {mode: on, responder: 'http://ocsp.example:8080/x', timeout: 500ms,\n"
      "             policy: fail_open, cache_size: 7}\n");
  ASSERT_TRUE(set.ok()) << errors(set);
  const auto& ocsp = set.config->listeners[0].tls.ocsp;
  EXPECT_EQ(ocsp.mode, config::OcspMode::On);
  EXPECT_EQ(ocsp.responder, "http://ocsp.example:8080/x");
  EXPECT_EQ(ocsp.timeout, 500ms);
  EXPECT_EQ(ocsp.policy, config::OcspPolicy::FailOpen);
  EXPECT_EQ(ocsp.cache_size, 7u);
  auto defaults = loadWithOcsp("      ocsp: {mode: on}\n");
  ASSERT_TRUE(defaults.ok()) << errors(defaults);
  EXPECT_EQ(defaults.config->listeners[0].tls.ocsp.timeout, 2s);
  EXPECT_EQ(defaults.config->listeners[0].tls.ocsp.policy, config::OcspPolicy::FailClosed);
  EXPECT_EQ(defaults.config->listeners[0].tls.ocsp.cache_size, 10'000u);
}

TEST(OcspConfigTest, HttpsResponderRefusedWithPosition) {
  auto result =
      loadWithOcsp("      ocsp:\n        mode: on\n        responder: https://ocsp.example/\n");
  ASSERT_EQ(result.errors.size(), 1u) << errors(result);
  EXPECT_NE(result.errors[0].find("test.yaml:9:20: listeners[0].tls.ocsp.responder: https"),
            std::string::npos)
      << result.errors[0];
}

TEST(OcspConfigTest, BadValuesAllReported) {
  auto result = loadWithOcsp(
      "      ocsp:\n        mode: maybe\n        responder: ftp://x/\n        policy: open\n"
      "        timeout: 0s\n        cache: 5\n");
  EXPECT_EQ(result.errors.size(), 5u) << errors(result);
  auto bad_port = loadWithOcsp("      ocsp: {mode: on, responder: 'http://host:99999/'}\n");
  EXPECT_EQ(bad_port.errors.size(), 1u) << errors(bad_port);
  auto no_host = loadWithOcsp("      ocsp: {mode: on, responder: 'http:///path'}\n");
  EXPECT_EQ(no_host.errors.size(), 1u) << errors(no_host);
}

TEST(OcspConfigTest, OnWithoutClientCertificatesRefused) {
  auto result = config::loadConfigText(R"(listeners:
  - port: 8883
    tls:
      cert: server.pem
      key: server.key
      client_auth: none
      ocsp: {mode: on}
)",
                                       "test.yaml", "/tmp");
  ASSERT_EQ(result.errors.size(), 1u) << errors(result);
  EXPECT_NE(result.errors[0].find("test.yaml:7:20: listeners[0].tls.ocsp.mode: "),
            std::string::npos)
      << result.errors[0];
  EXPECT_NE(result.errors[0].find("client_auth"), std::string::npos);
}

}  // namespace
}  // namespace mqtls::tls

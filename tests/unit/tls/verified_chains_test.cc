// The verified-chain cache (tls/verified_chains.h): a miss verifies in full and keeps the chain,
// a hit does not verify again (full verifications counted), another chain misses, the LRU bound,
// an entry outside the validity of its certificates or CRLs is not used (the clock is a
// parameter), failures are not kept; and in real handshakes: the hit leaves a verified chain on
// the SSL, an acceptance under lenient crl_next_update is not kept, verify_cache_size 0 turns it
// off, and an SNI site's own cache is the one that runs for its clients.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <stdlib.h>

#include <filesystem>

#include "test_certs.h"
#include "tls/context.h"
#include "tls/crl.h"
#include "tls/verified_chains.h"

namespace mqtls::tls {
namespace {

namespace fs = std::filesystem;
using namespace mqtls::testing;

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

int full_verifications = 0;  // calls of countingVerify in the running test

int countingVerify(X509_STORE_CTX* store) {
  ++full_verifications;
  return X509_verify_cert(store);
}

class VerifiedChainsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    full_verifications = 0;
    ASSERT_TRUE(root && intermediate && intermediate_key);
    X509_STORE_add_cert(store.get(), root.get());
  }

  // A leaf of the test PKI's intermediate, valid from a minute ago for `seconds`.
  X509Ptr leaf(long seconds = 3600) {
    EvpPkeyPtr key = ecKey();
    return makeCertificate(key.get(), "device", -60, seconds, intermediate.get(),
                           intermediate_key.get());
  }

  // Verifies `cert` sent with the intermediate (and `extra`, if given) through `cache` at `at`,
  // as a server verifies a client chain. `chain_size` gets the verified chain's length.
  int verify(VerifiedChains& cache, X509* cert, std::time_t at, X509* extra = nullptr,
             int* chain_size = nullptr) {
    // As OpenSSL does: the stack owns a reference to each, the leaf first of the untrusted ones.
    STACK_OF(X509)* sent = sk_X509_new_null();
    for (X509* each : {cert, intermediate.get(), extra}) {
      if (each != nullptr && X509_up_ref(each) == 1) {
        sk_X509_push(sent, each);
      }
    }
    X509StoreCtxPtr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), cert, sent);
    X509_STORE_CTX_set_default(ctx.get(), "ssl_client");
    const int verdict = cache.verify(ctx.get(), at, &countingVerify);
    if (chain_size != nullptr) {
      *chain_size = sk_X509_num(X509_STORE_CTX_get0_chain(ctx.get()));
    }
    ctx.reset();
    sk_X509_pop_free(sent, X509_free);
    ERR_clear_error();
    return verdict;
  }

  X509Ptr root = readCertificateFile(certPath("root-ca.pem"));
  X509Ptr intermediate = readCertificateFile(certPath("intermediate-ca.pem"));
  EvpPkeyPtr intermediate_key = readKeyFile(certPath("intermediate-ca.key"));
  X509StorePtr store{X509_STORE_new()};
  std::time_t now = std::time(nullptr);
};

TEST_F(VerifiedChainsTest, MissThenHitWithoutASecondFullVerification) {
  VerifiedChains cache(10);
  X509Ptr device = leaf();
  int chain_size = 0;
  EXPECT_EQ(verify(cache, device.get(), now, nullptr, &chain_size), 1);
  EXPECT_EQ(full_verifications, 1);
  EXPECT_EQ(chain_size, 3);
  EXPECT_EQ(cache.size(), 1u);
  chain_size = 0;
  EXPECT_EQ(verify(cache, device.get(), now + 10, nullptr, &chain_size), 1);
  EXPECT_EQ(full_verifications, 1) << "a hit verified in full";
  EXPECT_EQ(chain_size, 3) << "a hit left no verified chain";
}

TEST_F(VerifiedChainsTest, AnotherLeafOrAnotherSentChainMisses) {
  VerifiedChains cache(10);
  X509Ptr first = leaf();
  X509Ptr second = leaf();
  EXPECT_EQ(verify(cache, first.get(), now), 1);
  EXPECT_EQ(verify(cache, second.get(), now), 1);
  EXPECT_EQ(full_verifications, 2);
  EXPECT_EQ(verify(cache, first.get(), now, root.get()), 1);  // same leaf, one more cert sent
  EXPECT_EQ(full_verifications, 3);
  EXPECT_EQ(cache.size(), 3u);
}

TEST_F(VerifiedChainsTest, AFailureIsNeverKept) {
  VerifiedChains cache(10);
  EvpPkeyPtr key = ecKey();
  X509Ptr rogue = makeCertificate(key.get(), "rogue", -60, 3600, nullptr, nullptr);
  EXPECT_NE(verify(cache, rogue.get(), now), 1);
  EXPECT_NE(verify(cache, rogue.get(), now), 1);
  EXPECT_EQ(full_verifications, 2);
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(VerifiedChainsTest, AnEntryPastItsNotAfterIsNotUsed) {
  VerifiedChains cache(10);
  X509Ptr device = leaf(600);
  EXPECT_EQ(verify(cache, device.get(), now), 1);
  EXPECT_EQ(verify(cache, device.get(), now + 500), 1);
  EXPECT_EQ(full_verifications, 1);
  // Expired while cached: verified in full again (which, at the real time, still accepts it).
  EXPECT_EQ(verify(cache, device.get(), now + 700), 1);
  EXPECT_EQ(full_verifications, 2);
  auto key = std::optional<ChainKey>{};
  {
    X509StoreCtxPtr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), device.get(), nullptr);
    key = VerifiedChains::keyOf(ctx.get());
  }
  ASSERT_TRUE(key);
  EXPECT_EQ(cache.find(*key, now + 700), nullptr);
}

TEST_F(VerifiedChainsTest, AnEntryBeforeItsNotBeforeIsNotUsed) {
  VerifiedChains cache(10);
  X509Ptr device = leaf();
  EXPECT_EQ(verify(cache, device.get(), now), 1);
  EXPECT_EQ(verify(cache, device.get(), now - 3600), 1);  // the clock went back
  EXPECT_EQ(full_verifications, 2);
}

TEST_F(VerifiedChainsTest, AnEntryPastTheNextUpdateOfItsCrlIsNotUsed) {
  X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  X509CrlPtr crl = makeCrl(intermediate.get(), intermediate_key.get(), -60, 600);
  X509_STORE_add_crl(store.get(), crl.get());
  VerifiedChains cache(10);
  X509Ptr device = leaf(7200);
  EXPECT_EQ(verify(cache, device.get(), now), 1);
  EXPECT_EQ(verify(cache, device.get(), now + 500), 1);
  EXPECT_EQ(full_verifications, 1);
  EXPECT_EQ(verify(cache, device.get(), now + 700), 1);  // strict would refuse a stale CRL
  EXPECT_EQ(full_verifications, 2);
}

TEST_F(VerifiedChainsTest, AnEntryEndsWhenAStagedCrlTakesOver) {
  // The next CRL is already in the store, valid from now + 300: from then on OpenSSL checks
  // against it, so a chain verified before must be verified again.
  X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  // Through DER, as CRLs are loaded from files: the store tells CRLs apart by the hash decoding
  // computes, and would take a second CRL made in memory for a copy of the first.
  const auto decoded = [](X509CrlPtr crl) {
    unsigned char* der = nullptr;
    const int length = i2d_X509_CRL(crl.get(), &der);
    const unsigned char* cursor = der;
    X509CrlPtr copy(d2i_X509_CRL(nullptr, &cursor, length));
    OPENSSL_free(der);
    return copy;
  };
  X509CrlPtr current = decoded(makeCrl(intermediate.get(), intermediate_key.get(), -60, 600));
  X509CrlPtr staged = decoded(makeCrl(intermediate.get(), intermediate_key.get(), 300, 900));
  X509_STORE_add_crl(store.get(), current.get());
  X509_STORE_add_crl(store.get(), staged.get());
  VerifiedChains cache(10);
  X509Ptr device = leaf(7200);
  EXPECT_EQ(verify(cache, device.get(), now), 1);
  EXPECT_EQ(verify(cache, device.get(), now + 100), 1);
  EXPECT_EQ(full_verifications, 1);
  EXPECT_EQ(verify(cache, device.get(), now + 400), 1);
  EXPECT_EQ(full_verifications, 2);
}

TEST_F(VerifiedChainsTest, ARetiredCacheKeepsNothing) {
  VerifiedChains cache(10);
  X509Ptr device = leaf();
  EXPECT_EQ(verify(cache, device.get(), now), 1);
  EXPECT_EQ(cache.size(), 1u);
  cache.retire();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(verify(cache, device.get(), now), 1);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(full_verifications, 2);
}

TEST_F(VerifiedChainsTest, KeepsAtMostItsCapacityLeastRecentlyUsedFirst) {
  VerifiedChains cache(2);
  X509Ptr a = leaf();
  X509Ptr b = leaf();
  X509Ptr c = leaf();
  verify(cache, a.get(), now);
  verify(cache, b.get(), now);
  verify(cache, a.get(), now);  // a is now the most recently used
  EXPECT_EQ(full_verifications, 2);
  verify(cache, c.get(), now);  // evicts b
  EXPECT_EQ(cache.size(), 2u);
  verify(cache, a.get(), now);
  EXPECT_EQ(full_verifications, 3);
  verify(cache, b.get(), now);
  EXPECT_EQ(full_verifications, 4);
}

TEST_F(VerifiedChainsTest, RecordsTheResultOnTheSsl) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  SslPtr ssl(SSL_new(ctx.get()));
  EXPECT_EQ(verifyCacheResult(ssl.get()), VerifyCacheResult::None);
  EXPECT_EQ(verifyCacheResult(nullptr), VerifyCacheResult::None);
  VerifiedChains cache(10);
  X509Ptr device = leaf();
  X509StoreCtxPtr store_ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(store_ctx.get(), store.get(), device.get(), nullptr);
  X509_STORE_CTX_set_ex_data(store_ctx.get(), SSL_get_ex_data_X509_STORE_CTX_idx(), ssl.get());
  // Only the leaf: the intermediate is missing, so verification fails and is a miss.
  EXPECT_NE(cache.verify(store_ctx.get(), now, &countingVerify), 1);
  EXPECT_EQ(verifyCacheResult(ssl.get()), VerifyCacheResult::Miss);
  ERR_clear_error();
}

// Handshakes over memory BIOs -----------------------------------------------------------------

config::TlsSettings settings() {
  config::TlsSettings s;
  s.cert_file = certPath("server-ec.pem");
  s.key_file = certPath("server-ec.key");
  s.client_ca_file = certPath("ca-bundle.pem");
  return s;
}

struct Outcome {
  bool ok = false;
  VerifyCacheResult cache = VerifyCacheResult::None;
  int verified_chain = 0;   // SSL_get0_verified_chain's length
  int presented_chain = 0;  // SSL_get_peer_cert_chain's length (the intermediates sent)
  bool leaf = false;        // SSL_get0_peer_certificate is there
};

// A fresh client (no session to resume) with client.pem/.key, asking for `sni` if not empty.
Outcome handshake(const TlsContext& context, const std::string& sni = "") {
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_use_certificate_chain_file(client_ctx.get(), certPath("client.pem").c_str());
  SSL_CTX_use_PrivateKey_file(client_ctx.get(), certPath("client.key").c_str(), SSL_FILETYPE_PEM);
  SslPtr client(SSL_new(client_ctx.get()));
  if (!sni.empty()) {
    SSL_set_tlsext_host_name(client.get(), sni.c_str());
  }
  SslPtr server = context.newSsl();
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  Outcome out;
  for (int round = 0; round < 20 && !out.ok; ++round) {
    SSL_do_handshake(client.get());
    const int rc = SSL_do_handshake(server.get());
    if (rc == 1) {
      out.ok = true;
    } else if (SSL_get_error(server.get(), rc) != SSL_ERROR_WANT_READ) {
      break;
    }
  }
  out.cache = verifyCacheResult(server.get());
  out.verified_chain = sk_X509_num(SSL_get0_verified_chain(server.get()));
  out.presented_chain = sk_X509_num(SSL_get_peer_cert_chain(server.get()));
  out.leaf = SSL_get0_peer_certificate(server.get()) != nullptr;
  ERR_clear_error();
  return out;
}

TEST(VerifiedChainsHandshake, TheSecondHandshakeIsAHitWithAVerifiedChain) {
  auto context = TlsContext::create(settings());
  ASSERT_TRUE(context.ok()) << context.error().message;
  Outcome first = handshake(**context);
  ASSERT_TRUE(first.ok);
  EXPECT_EQ(first.cache, VerifyCacheResult::Miss);
  Outcome second = handshake(**context);
  ASSERT_TRUE(second.ok);
  EXPECT_EQ(second.cache, VerifyCacheResult::Hit);
  EXPECT_EQ(second.verified_chain, first.verified_chain);
  EXPECT_GE(second.verified_chain, 2);
  // Either way the intermediates the client sent are not kept with the session; the leaf is.
  EXPECT_EQ(first.presented_chain, 0);
  EXPECT_EQ(second.presented_chain, 0);
  EXPECT_TRUE(first.leaf && second.leaf);
}

TEST(VerifiedChainsHandshake, SizeZeroTurnsItOff) {
  auto s = settings();
  s.verify_cache_size = 0;
  auto context = TlsContext::create(s);
  ASSERT_TRUE(context.ok()) << context.error().message;
  for (int i = 0; i < 2; ++i) {
    Outcome out = handshake(**context);
    ASSERT_TRUE(out.ok);
    EXPECT_EQ(out.cache, VerifyCacheResult::None);
    EXPECT_EQ(out.presented_chain, 1) << "without the cache OpenSSL keeps what was sent";
  }
}

TEST(VerifiedChainsHandshake, AnAcceptanceWithAStaleCrlIsNotKept) {
  X509Ptr issuer = readCertificateFile(certPath("intermediate-ca.pem"));
  EvpPkeyPtr issuer_key = readKeyFile(certPath("intermediate-ca.key"));
  X509CrlPtr stale = makeCrl(issuer.get(), issuer_key.get(), -7200, -3600);
  std::string pattern = (fs::path(::testing::TempDir()) / "mqtls-vc-XXXXXX").string();
  const fs::path dir(mkdtemp(pattern.data()));
  ASSERT_TRUE(writePem((dir / "stale.pem").string(), crlPem(stale.get())));
  auto s = settings();
  s.crl_files = {(dir / "stale.pem").string()};
  s.crl_next_update = config::CrlNextUpdate::Lenient;
  auto context = TlsContext::create(s);
  ASSERT_TRUE(context.ok()) << context.error().message;
  for (int i = 0; i < 2; ++i) {
    Outcome out = handshake(**context);
    ASSERT_TRUE(out.ok);
    EXPECT_EQ(out.cache, VerifyCacheResult::Miss) << "handshake " << i;
  }
  fs::remove_all(dir);
}

TEST(VerifiedChainsHandshake, AnSniSiteVerifiesWithItsOwnCache) {
  auto s = settings();
  config::SniSite site;
  site.names = {"site.example.test"};
  site.tls = settings();
  s.sites.push_back(site);
  auto context = TlsContext::create(s);
  ASSERT_TRUE(context.ok()) << context.error().message;
  EXPECT_EQ(handshake(**context, "site.example.test").cache, VerifyCacheResult::Miss);
  Outcome hit = handshake(**context, "site.example.test");
  ASSERT_TRUE(hit.ok);
  EXPECT_EQ(hit.cache, VerifyCacheResult::Hit);
  // The listener's own context has not seen the chain: its cache is another one.
  EXPECT_EQ(handshake(**context).cache, VerifyCacheResult::Miss);
  EXPECT_EQ(handshake(**context).cache, VerifyCacheResult::Hit);
}

}  // namespace
}  // namespace mqtls::tls

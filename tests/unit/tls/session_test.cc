// Session resumption over memory BIOs: a session resumes, a forgotten one never does, no
// session outlives its client certificate (a certificate made here, valid for seconds, issued
// by the test intermediate CA), sessions survive a rebuilt context (a reload) that shares the
// listener's SessionResources, tickets resume across contexts given the same key file, and a
// session whose certificate a newer CRL revokes is not resumed, in both modes; worker slots, each
// in its own OpenSSL library context, verify alike and resume each other's sessions.
#include <gtest/gtest.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <openssl/rand.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "test_certs.h"
#include "tls/context.h"
#include "tls/context_store.h"
#include "tls/library_contexts.h"
#include "tls/peer_identity.h"

namespace mqtls::tls {
namespace {

using namespace mqtls::testing;

std::string certPath(const std::string& name) {
  return std::string(MQTLS_CERTS_DIR) + "/" + name;
}

config::TlsSettings settings(config::TlsVersion max_version) {
  config::TlsSettings s;
  s.cert_file = certPath("server-ec.pem");
  s.key_file = certPath("server-ec.key");
  s.client_ca_file = certPath("ca-bundle.pem");
  s.max_version = max_version;
  return s;
}

// A client context presenting `cert` with `key`.
SslCtxPtr clientContext(X509* cert, EVP_PKEY* key) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_use_certificate(ctx.get(), cert);
  SSL_CTX_use_PrivateKey(ctx.get(), key);
  return ctx;
}

SslCtxPtr clientContext(const std::string& name) {
  X509Ptr cert = readCertificateFile(certPath(name + ".pem"));
  EvpPkeyPtr key = readKeyFile(certPath(name + ".key"));
  return clientContext(cert.get(), key.get());
}

// One finished (or failed) handshake; both ends stay alive for inspection.
struct Handshake {
  SslPtr client;
  SslPtr server;
  bool done = false;
  bool resumed = false;
  long verify = X509_V_OK;
  SslSessionPtr session;  // the client's newest session, for resuming

  // Frees both ends as after a clean close, so OpenSSL keeps the session resumable.
  ~Handshake() {
    for (SSL* ssl : {client.get(), server.get()}) {
      if (ssl != nullptr) {
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
      }
    }
  }
};

// Runs a handshake, offering `resume` if not null, until both ends finish or one fails.
std::unique_ptr<Handshake> handshake(const TlsContext& server_ctx, SSL_CTX* client_ctx,
                                     SSL_SESSION* resume = nullptr) {
  auto h = std::make_unique<Handshake>();
  h->client.reset(SSL_new(client_ctx));
  h->server = server_ctx.newSsl();
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(h->client.get(), client_bio, client_bio);
  SSL_set_bio(h->server.get(), server_bio, server_bio);
  SSL_set_connect_state(h->client.get());
  SSL_set_accept_state(h->server.get());
  if (resume != nullptr) {
    SSL_set_session(h->client.get(), resume);
  }
  bool client_done = false;
  for (int round = 0; round < 20 && !(client_done && h->done); ++round) {
    if (!client_done) {
      int rc = SSL_do_handshake(h->client.get());
      client_done = rc == 1;
      if (rc != 1 && SSL_get_error(h->client.get(), rc) != SSL_ERROR_WANT_READ) {
        break;
      }
    }
    if (!h->done) {
      int rc = SSL_do_handshake(h->server.get());
      h->done = rc == 1;
      if (rc != 1 && SSL_get_error(h->server.get(), rc) != SSL_ERROR_WANT_READ) {
        break;
      }
    }
  }
  char byte;
  SSL_read(h->client.get(), &byte, 1);  // TLS 1.3: takes the session ticket
  ERR_clear_error();
  h->resumed = h->done && SSL_session_reused(h->server.get()) == 1;
  h->verify = SSL_get_verify_result(h->server.get());
  h->session.reset(SSL_get1_session(h->client.get()));
  return h;
}

class SessionTest : public ::testing::TestWithParam<config::TlsVersion> {};

TEST_P(SessionTest, SessionResumesUntilForgotten) {
  auto context = TlsContext::create(settings(GetParam()));
  ASSERT_TRUE(context.ok()) << context.error().message;
  SslCtxPtr client = clientContext("client");
  auto first = handshake(**context, client.get());
  ASSERT_TRUE(first->done);
  EXPECT_FALSE(first->resumed);
  auto second = handshake(**context, client.get(), first->session.get());
  ASSERT_TRUE(second->done);
  EXPECT_TRUE(second->resumed);

  forgetSession(second->server.get());
  auto third = handshake(**context, client.get(), second->session.get());
  ASSERT_TRUE(third->done);
  EXPECT_FALSE(third->resumed);
}

// A client identity is extracted once and travels with the stored session: a TLS 1.2 session
// from its full handshake on (the connection takes it, and every resumption resumes that same
// session), a TLS 1.3 one from its first renewal on (every later renewal copies it).
TEST_P(SessionTest, StoredSessionsCarryTheirClientIdentity) {
  const bool tls12 = GetParam() == config::TlsVersion::Tls12;
  auto context = TlsContext::create(settings(GetParam()));
  ASSERT_TRUE(context.ok()) << context.error().message;
  SslCtxPtr client = clientContext("client");
  auto full = handshake(**context, client.get());
  ASSERT_TRUE(full->done);
  auto kept = keptPeerIdentity(SSL_get_session(full->server.get()));
  EXPECT_EQ(kept != nullptr, tls12);

  auto resumed = handshake(**context, client.get(), full->session.get());
  ASSERT_TRUE(resumed->resumed);
  if (tls12) {
    EXPECT_EQ(keptPeerIdentity(SSL_get_session(resumed->server.get())), kept);
  } else {
    kept = keptPeerIdentity(SSL_get_session(resumed->server.get()));
  }
  ASSERT_NE(kept, nullptr);
  auto extracted = extractPeerIdentity(SSL_get0_peer_certificate(resumed->server.get()));
  ASSERT_TRUE(extracted.ok());
  EXPECT_EQ(kept->common_name, extracted->common_name);
  EXPECT_EQ(kept->subject_dn, extracted->subject_dn);
  EXPECT_EQ(kept->san_dns, extracted->san_dns);
  EXPECT_EQ(kept->fingerprint_sha256, extracted->fingerprint_sha256);

  for (int reconnect = 0; reconnect < 2; ++reconnect) {
    auto again = handshake(**context, client.get(), resumed->session.get());
    ASSERT_TRUE(again->resumed);
    // The very same identity object: nothing was extracted again.
    EXPECT_EQ(keptPeerIdentity(SSL_get_session(again->server.get())), kept);
    resumed = std::move(again);
  }
}

TEST_P(SessionTest, NoSessionOutlivesTheClientCertificate) {
  X509Ptr ca = readCertificateFile(certPath("intermediate-ca.pem"));
  EvpPkeyPtr ca_key = readKeyFile(certPath("intermediate-ca.key"));
  ASSERT_TRUE(ca && ca_key);
  EvpPkeyPtr key = ecKey();
  X509Ptr cert = makeCertificate(key.get(), "device-brief", -60, 2, ca.get(), ca_key.get());
  auto context = TlsContext::create(settings(GetParam()));
  ASSERT_TRUE(context.ok()) << context.error().message;
  SslCtxPtr client = clientContext(cert.get(), key.get());

  auto first = handshake(**context, client.get());
  ASSERT_TRUE(first->done);
  EXPECT_TRUE(peerCertificateCurrent(first->server.get()));
  auto second = handshake(**context, client.get(), first->session.get());
  ASSERT_TRUE(second->done);
  EXPECT_TRUE(second->resumed);  // resumable while the certificate is valid

  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  EXPECT_FALSE(peerCertificateCurrent(first->server.get()));
  auto late = handshake(**context, client.get(), second->session.get());
  EXPECT_FALSE(late->resumed);
  EXPECT_FALSE(late->done);  // a full handshake, which the expired certificate fails
  EXPECT_EQ(late->verify, X509_V_ERR_CERT_HAS_EXPIRED);
}

// A file in the test's temporary directory, unique to this process.
std::string tempPath(const std::string& name) {
  return ::testing::TempDir() + "/mqtls-session-" + std::to_string(::getpid()) + "-" + name;
}

// A ticket key file of `count` random 80-byte keys, base64, one per line.
std::string writeKeyFile(const std::string& name, int count) {
  const std::string path = tempPath(name);
  std::ofstream out(path);
  for (int i = 0; i < count; ++i) {
    unsigned char raw[80];
    unsigned char line[128];
    RAND_bytes(raw, sizeof raw);
    EVP_EncodeBlock(line, raw, sizeof raw);
    out << line << "\n";
  }
  return path;
}

config::TlsSettings ticketSettings(config::TlsVersion version, const std::string& key_file) {
  config::TlsSettings s = settings(version);
  s.session_mode = config::SessionMode::Tickets;
  s.ticket_key_file = key_file;
  return s;
}

TEST_P(SessionTest, SessionsSurviveARebuiltContextSharingTheStore) {
  auto started = TlsContext::create(settings(GetParam()));
  ASSERT_TRUE(started.ok()) << started.error().message;
  auto reloaded = TlsContext::create(settings(GetParam()), (*started)->sessions());
  auto unshared = TlsContext::create(settings(GetParam()));
  ASSERT_TRUE(reloaded.ok() && unshared.ok());
  EXPECT_EQ((*reloaded)->sessions().store, (*started)->sessions().store);
  SslCtxPtr client = clientContext("client");
  auto first = handshake(**started, client.get());
  ASSERT_TRUE(first->done);
  EXPECT_FALSE(handshake(**unshared, client.get(), first->session.get())->resumed);
  auto again = handshake(**reloaded, client.get(), first->session.get());
  ASSERT_TRUE(again->done);
  EXPECT_TRUE(again->resumed);
}

TEST_P(SessionTest, TicketsResumeAcrossContextsReadingTheSameKeyFile) {
  const std::string shared = writeKeyFile("shared.keys", 2);
  const std::string other = writeKeyFile("other.keys", 1);
  auto replica_a = TlsContext::create(ticketSettings(GetParam(), shared));
  auto replica_b = TlsContext::create(ticketSettings(GetParam(), shared));
  auto stranger = TlsContext::create(ticketSettings(GetParam(), other));
  ASSERT_TRUE(replica_a.ok()) << replica_a.error().message;
  ASSERT_TRUE(replica_b.ok() && stranger.ok());
  EXPECT_EQ((*replica_a)->sessions().ticketKeyFiles(), std::vector<std::string>{shared});
  EXPECT_FALSE((*replica_a)->sessions().store);  // stateless: nothing kept server-side
  SslCtxPtr client = clientContext("client");
  auto first = handshake(**replica_a, client.get());
  ASSERT_TRUE(first->done);
  auto foreign = handshake(**stranger, client.get(), first->session.get());
  EXPECT_TRUE(foreign->done);
  EXPECT_FALSE(foreign->resumed);
  auto across = handshake(**replica_b, client.get(), first->session.get());
  ASSERT_TRUE(across->done);
  EXPECT_TRUE(across->resumed);
}

// The sessions a client was given (each TLS 1.3 ticket, each TLS 1.2 session), newest last.
std::vector<SslSessionPtr>& sessionsGiven(SSL_CTX* client) {
  static std::vector<SslSessionPtr> given;  // one client context per test at a time
  SSL_CTX_set_session_cache_mode(client, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(client, [](SSL*, SSL_SESSION* session) {
    given.emplace_back(session);  // takes the reference OpenSSL passes
    return 1;
  });
  return given;
}

TEST_P(SessionTest, TicketsKeepResumingOnEveryReconnect) {
  auto context = TlsContext::create(ticketSettings(GetParam(), writeKeyFile("renew.keys", 1)));
  ASSERT_TRUE(context.ok()) << context.error().message;
  SslCtxPtr client = clientContext("client");
  std::vector<SslSessionPtr>& given = sessionsGiven(client.get());
  given.clear();
  ASSERT_TRUE(handshake(**context, client.get())->done);
  for (int reconnect = 1; reconnect <= 3; ++reconnect) {
    // A TLS 1.3 client uses each ticket once (RFC 8446 C.4): every resumption must hand it a
    // new one, or its next reconnect is a full handshake.
    ASSERT_FALSE(given.empty()) << "no session to resume for reconnect " << reconnect;
    SslSessionPtr newest = std::move(given.back());
    given.clear();
    auto next = handshake(**context, client.get(), newest.get());
    ASSERT_TRUE(next->done);
    EXPECT_TRUE(next->resumed) << "reconnect " << reconnect;
    if (GetParam() == config::TlsVersion::Tls12) {
      given.push_back(std::move(newest));  // TLS 1.2 keeps resuming the same session
    }
  }
  given.clear();
}

// A ticket is decoded into a new session at every resumption: nothing to keep an identity with.
TEST_P(SessionTest, TicketResumptionsKeepNoIdentity) {
  auto context = TlsContext::create(ticketSettings(GetParam(), writeKeyFile("kept.keys", 1)));
  ASSERT_TRUE(context.ok()) << context.error().message;
  SslCtxPtr client = clientContext("client");
  std::vector<SslSessionPtr>& given = sessionsGiven(client.get());
  given.clear();
  ASSERT_TRUE(handshake(**context, client.get())->done);
  ASSERT_FALSE(given.empty());
  SslSessionPtr ticket = std::move(given.back());
  given.clear();
  auto resumed = handshake(**context, client.get(), ticket.get());
  ASSERT_TRUE(resumed->resumed);
  EXPECT_EQ(keptPeerIdentity(SSL_get_session(resumed->server.get())), nullptr);
  given.clear();
}

TEST_P(SessionTest, AnUnusableTicketKeyFileIsABuildError) {
  BuildReport report;
  EXPECT_FALSE(TlsContext::build(ticketSettings(GetParam(), tempPath("missing.keys")), report));
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors[0].key, "session.ticket_key_file");
}

// Sessions made under an empty CRL of the intermediate CA, resumed under a context of the same
// listener that has the PKI's CRL revoking client-revoked.pem (a CRL reload).
void expectRevokedSessionRefused(config::TlsSettings before) {
  X509Ptr ca = readCertificateFile(certPath("intermediate-ca.pem"));
  EvpPkeyPtr ca_key = readKeyFile(certPath("intermediate-ca.key"));
  ASSERT_TRUE(ca && ca_key);
  X509CrlPtr empty = makeCrl(ca.get(), ca_key.get(), -60, 3600);
  before.crl_files = {tempPath("empty.crl")};
  ASSERT_TRUE(writePem(before.crl_files[0], crlPem(empty.get())));
  config::TlsSettings after = before;
  after.crl_files = {certPath("crl.pem")};
  auto old_trust = TlsContext::create(before);
  ASSERT_TRUE(old_trust.ok()) << old_trust.error().message;
  auto new_trust = TlsContext::create(after, (*old_trust)->sessions());
  ASSERT_TRUE(new_trust.ok()) << new_trust.error().message;
  EXPECT_NE((*old_trust)->trustGeneration(), (*new_trust)->trustGeneration());

  SslCtxPtr revoked = clientContext("client-revoked");
  SslCtxPtr good = clientContext("client");
  auto revoked_first = handshake(**old_trust, revoked.get());
  auto good_first = handshake(**old_trust, good.get());
  ASSERT_TRUE(revoked_first->done && good_first->done);  // not revoked yet

  auto revoked_again = handshake(**new_trust, revoked.get(), revoked_first->session.get());
  EXPECT_FALSE(revoked_again->resumed);
  EXPECT_FALSE(revoked_again->done);  // the full handshake fails verification
  EXPECT_EQ(revoked_again->verify, X509_V_ERR_CERT_REVOKED);
  auto good_again = handshake(**new_trust, good.get(), good_first->session.get());
  EXPECT_TRUE(good_again->done);
  EXPECT_TRUE(good_again->resumed);
}

TEST_P(SessionTest, StatefulSessionOfANewlyRevokedCertificateIsNotResumed) {
  expectRevokedSessionRefused(settings(GetParam()));
}

TEST_P(SessionTest, TicketOfANewlyRevokedCertificateIsNotResumed) {
  expectRevokedSessionRefused(ticketSettings(GetParam(), writeKeyFile("revocation.keys", 1)));
}

// As mqtls's workers use them: each slot's context is built in its own OpenSSL library context,
// verifies (CRLs included) as the default one does, and shares the listener's sessions and
// verified chains, so a session made on one worker resumes on another, in both modes, and a
// chain verified on one is a cache hit on another.
TEST_P(SessionTest, WorkerSlotsVerifyInTheirOwnLibraryContextsAndShareSessions) {
  LibraryContexts libraries(2);
  ASSERT_TRUE(libraries.warnings().empty()) << libraries.warnings().front();
  ASSERT_NE(libraries.at(1), nullptr);
  const std::string keys = writeKeyFile("slots.keys", 1);
  for (config::TlsSettings s : {settings(GetParam()), ticketSettings(GetParam(), keys)}) {
    s.crl_files = {certPath("crl.pem")};
    auto initial = TlsContext::create(s);
    ASSERT_TRUE(initial.ok()) << initial.error().message;
    auto store = ContextStore::create(*initial, s, libraries);
    ASSERT_TRUE(store.ok()) << store.error().message;
    TlsContextPtr zero = (*store)->current(0);
    TlsContextPtr one = (*store)->current(1);
    EXPECT_EQ(zero->library(), nullptr);
    EXPECT_EQ(zero->handshakeLibrary(), libraries.handshakesAt(0));
    EXPECT_EQ(one->handshakeLibrary(), libraries.handshakesAt(1));
    EXPECT_EQ(one->library(), libraries.at(1));
    EXPECT_EQ(one->sessions().store, zero->sessions().store);
    EXPECT_EQ(one->sessions().keys, zero->sessions().keys);

    SslCtxPtr client = clientContext("client");
    auto first = handshake(*one, client.get());
    ASSERT_TRUE(first->done);
    EXPECT_FALSE(first->resumed);
    // The client's certificate was parsed where the slot's SSL_CTX lives: its handshake
    // library context, whose one provider decodes public keys (tls/handshake_library.h).
    X509* peer = SSL_get0_peer_certificate(first->server.get());
    ASSERT_NE(peer, nullptr);
    const OSSL_PROVIDER* parsed_by = EVP_PKEY_get0_provider(X509_get0_pubkey(peer));
    ASSERT_NE(parsed_by, nullptr);
    EXPECT_STREQ(OSSL_PROVIDER_get0_name(parsed_by), "mqtls-handshake");
    auto second = handshake(*zero, client.get(), first->session.get());
    ASSERT_TRUE(second->done);
    EXPECT_TRUE(second->resumed);
    auto third = handshake(*one, client.get(), second->session.get());
    ASSERT_TRUE(third->done);
    EXPECT_TRUE(third->resumed);
    // The chain verified on slot 1 is a cache hit on slot 0: the slots share the cache.
    EXPECT_EQ(verifyCacheResult(first->server.get()), VerifyCacheResult::Miss);
    auto fresh = handshake(*zero, client.get());
    ASSERT_TRUE(fresh->done);
    EXPECT_FALSE(fresh->resumed);
    EXPECT_EQ(verifyCacheResult(fresh->server.get()), VerifyCacheResult::Hit);

    SslCtxPtr revoked = clientContext("client-revoked");
    auto refused = handshake(*one, revoked.get());
    EXPECT_FALSE(refused->done);
    EXPECT_EQ(refused->verify, X509_V_ERR_CERT_REVOKED);
    SslCtxPtr stranger = clientContext("client-wrongca");
    EXPECT_FALSE(handshake(*one, stranger.get())->done);
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, SessionTest,
                         ::testing::Values(config::TlsVersion::Tls12, config::TlsVersion::Tls13),
                         [](const auto& info) {
                           return info.param == config::TlsVersion::Tls12 ? "Tls12" : "Tls13";
                         });

TEST(SessionHelpers, SafeWithoutPeerOrSession) {
  EXPECT_TRUE(peerCertificateCurrent(nullptr));
  forgetSession(nullptr);
  auto context = TlsContext::create(settings(config::TlsVersion::Tls13));
  ASSERT_TRUE(context.ok()) << context.error().message;
  SslPtr fresh = (*context)->newSsl();
  EXPECT_TRUE(peerCertificateCurrent(fresh.get()));
  forgetSession(fresh.get());
  // A handshake the server refuses (no client certificate) leaves a session to forget safely.
  SslCtxPtr anonymous(SSL_CTX_new(TLS_client_method()));
  auto failed = handshake(**context, anonymous.get());
  EXPECT_FALSE(failed->done);
  EXPECT_TRUE(peerCertificateCurrent(failed->server.get()));
  forgetSession(failed->server.get());
}

}  // namespace
}  // namespace mqtls::tls

namespace mqtls::tls {
namespace {

// In-memory ticket keys are made for one rotation period and lifetime: a reload that changes
// either must make new keys rather than keep the old ones silently.
TEST(SessionResources, InMemoryTicketKeysFitOnlyTheirRotationAndLifetime) {
  config::TlsSettings settings;
  settings.session_mode = config::SessionMode::Tickets;
  auto made = SessionResources::create(settings);
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_TRUE(made->fits(settings));
  auto rotated = settings;
  rotated.ticket_rotation = std::chrono::hours(2);
  EXPECT_FALSE(made->fits(rotated));
  auto longer = settings;
  longer.session_timeout = std::chrono::minutes(30);
  EXPECT_FALSE(made->fits(longer));
}

}  // namespace
}  // namespace mqtls::tls

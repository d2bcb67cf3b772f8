// The two kinds of run: connection loops (handshake rate) and publish/subscribe (throughput and
// ping-pong latency). Each runs one scenario against one target and returns what it measured.
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "measure.h"
#include "options.h"

namespace mqtls::bench {

// Client TLS contexts for one scenario: `client` for connect loops and publishers, `subscriber`
// for the subscriber. Null for plaintext targets.
struct ClientContexts {
  SSL_CTX* client = nullptr;
  SSL_CTX* subscriber = nullptr;
};

RunResult runConnectScenario(const Options& options, const Target& target, const Scenario& scenario,
                             const ClientContexts& contexts);

RunResult runPubSubScenario(const Options& options, const Target& target, const Scenario& scenario,
                            const ClientContexts& contexts);

// Idle connections (ScenarioKind::Idle): memory per connection held open.
RunResult runIdleScenario(const Options& options, const Target& target, const Scenario& scenario,
                          const ClientContexts& contexts);

// "TLSv1.3 TLS_AES_256_GCM_SHA384 x25519" for an established connection; "plaintext" for null.
std::string describeTls(SSL* ssl);

}  // namespace mqtls::bench

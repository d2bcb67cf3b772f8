// Metrics: the agreed names are exported, per-listener children are made once, expiry gauges of
// material no longer loaded disappear, and rate-limited lines are counted.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "ops/metrics.h"

namespace mqtls::ops {
namespace {

std::string scrape(Metrics& metrics) {
  return prometheus::TextSerializer().Serialize(metrics.registry().Collect());
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(Metrics, HandshakeResultsMapFailureReasons) {
  EXPECT_EQ(handshakeResultOf("unknown_ca"), HandshakeResult::UnknownCa);
  EXPECT_EQ(handshakeResultOf("timeout"), HandshakeResult::Timeout);
  EXPECT_EQ(handshakeResultOf("crl_expired"), HandshakeResult::CrlExpired);
  EXPECT_EQ(handshakeResultOf("not_tls"), HandshakeResult::Other);
  EXPECT_EQ(handshakeResultOf("eof"), HandshakeResult::Other);
  EXPECT_EQ(handshakeResultOf("ok"), HandshakeResult::Other);  // never a failure's result
  EXPECT_EQ(handshakeResultName(HandshakeResult::NoSharedCipher), "no_shared_cipher");
}

TEST(Metrics, ListenerChildrenAreMadeOnceAndCounted) {
  Metrics metrics;
  ListenerMetrics& a = metrics.listener("mqtts");
  EXPECT_EQ(&a, &metrics.listener("mqtts"));
  a.accepted();
  a.opened();
  a.opened();
  a.closed();
  a.handshake(HandshakeResult::Resumed);
  a.handshake(HandshakeResult::Expired);
  a.handshakeDuration(0.003);
  metrics.maxConnections(500);
  metrics.mqttConnect("5.0", "accepted");
  metrics.mqttConnect("3.1.1", "not_authorized");
  metrics.identityRefused("username_mismatch");
  metrics.tlsNegotiated("TLSv1.3", "TLS_AES_128_GCM_SHA256");
  metrics.packetsForwarded(Direction::ClientToBroker, 3);
  metrics.upstreamConnected(0.001);
  const std::string text = scrape(metrics);
  EXPECT_TRUE(has(text, "mqtls_connections_accepted_total{listener=\"mqtts\"} 1"));
  EXPECT_TRUE(has(text, "mqtls_connections_open{listener=\"mqtts\"} 1"));
  EXPECT_TRUE(has(text, "mqtls_tls_handshakes_total{listener=\"mqtts\",result=\"resumed\"} 1"));
  EXPECT_TRUE(has(text, "mqtls_tls_handshakes_total{listener=\"mqtts\",result=\"expired\"} 1"));
  EXPECT_TRUE(has(text, "mqtls_tls_handshakes_total{listener=\"mqtts\",result=\"ok\"} 0"));
  EXPECT_TRUE(has(text, "mqtls_tls_handshake_duration_seconds_count{listener=\"mqtts\"} 1"));
  EXPECT_TRUE(has(text, "mqtls_max_connections 500"));
  EXPECT_TRUE(has(text, "mqtls_mqtt_connects_total{result=\"accepted\",version=\"5.0\"} 1"));
  EXPECT_TRUE(
      has(text, "mqtls_mqtt_connects_total{result=\"not_authorized\",version=\"3.1.1\"} 1"));
  EXPECT_TRUE(has(text, "mqtls_identity_refusals_total{rule=\"username_mismatch\"} 1"));
  EXPECT_TRUE(has(
      text, "mqtls_tls_negotiated_total{cipher=\"TLS_AES_128_GCM_SHA256\",version=\"TLSv1.3\"} 1"));
  EXPECT_TRUE(has(text, "mqtls_forwarded_packets_total{direction=\"client_to_broker\"} 3"));
  EXPECT_TRUE(has(text, "mqtls_upstream_connect_duration_seconds_count 1"));
  EXPECT_TRUE(has(text, "mqtls_build_info{openssl=\""));
  EXPECT_TRUE(has(text, "mqtls_log_lines_suppressed_total 0"));
}

TEST(Metrics, ExpiriesOfReplacedMaterialAreRemoved) {
  Metrics metrics;
  metrics.setExpiries(
      "mqtts", {{"mqtts", "server", "CN=old", 100}, {"mqtts/b.example", "server", "CN=b", 200}},
      {{"mqtts", "CN=ca", 300}});
  metrics.setExpiries("other", {{"other", "server", "CN=x", 400}}, {});
  std::string text = scrape(metrics);
  EXPECT_TRUE(has(text, "listener=\"mqtts\",role=\"server\",subject=\"CN=old\"} 100"));
  EXPECT_TRUE(has(
      text, "mqtls_crl_next_update_timestamp_seconds{issuer=\"CN=ca\",listener=\"mqtts\"} 300"));
  metrics.setExpiries(
      "mqtts", {{"mqtts", "server", "CN=new", 500}, {"mqtts/b.example", "server", "CN=b", 250}},
      {});
  text = scrape(metrics);
  EXPECT_FALSE(has(text, "CN=old"));
  EXPECT_FALSE(has(text, "CN=ca"));
  EXPECT_TRUE(has(text, "listener=\"mqtts\",role=\"server\",subject=\"CN=new\"} 500"));
  EXPECT_TRUE(has(text, "listener=\"mqtts/b.example\",role=\"server\",subject=\"CN=b\"} 250"));
  EXPECT_TRUE(has(text, "listener=\"other\",role=\"server\",subject=\"CN=x\"} 400"));
}

TEST(Metrics, SuppressedLogLinesAreCounted) {
  Metrics metrics;
  for (int i = 0; i < 25; ++i) {
    metrics.limitedLog().warn("test_line", "line {}", i);
  }
  EXPECT_TRUE(has(scrape(metrics), "mqtls_log_lines_suppressed_total 15"));
}

TEST(Metrics, TrafficIsCountedOnlyWhileCountingIsOn) {
  Metrics metrics;
  metrics.bytesForwarded(Direction::ClientToBroker, 100);
  metrics.packetsForwarded(Direction::BrokerToClient, 2);
  metrics.countTraffic(false);
  metrics.bytesForwarded(Direction::ClientToBroker, 50);
  metrics.packetsForwarded(Direction::BrokerToClient, 5);
  const std::string text = scrape(metrics);
  EXPECT_TRUE(has(text, "mqtls_forwarded_bytes_total{direction=\"client_to_broker\"} 100"));
  EXPECT_TRUE(has(text, "mqtls_forwarded_packets_total{direction=\"broker_to_client\"} 2"));
}

}  // namespace
}  // namespace mqtls::ops

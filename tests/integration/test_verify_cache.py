"""The verified-chain cache (tls.verify_cache_size) through the real binary, real clients and a
real broker: a device reconnecting with the same chain is a hit (mqtls_tls_verify_cache_total on
/metrics); a cached device revoked by a CRL reload, whose CA was removed from client_ca, or whose
certificate expired since, is refused all the same; with verify_cache_size 0 nothing is looked
up. (The cache's own validity checks, with the clock as a parameter:
tests/unit/tls/verified_chains_test.cc.)"""

import datetime
import time
import unittest

import harness
import mqtt5
from harness import CA_BUNDLE, IntegrationTest, cert, pub



class VerifyCacheTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.ca = mqtt5.TestCa(self.workdir / "ca")

    def start(self, **tls):
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"].update(tls)
        return self.start_proxy(config)


    def lookups(self, proxy, result):
        return proxy.metric("mqtls_tls_verify_cache_total", listener="mqtts", result=result)

    def device(self):
        not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        return self.ca.client("device", "device-cached", not_after)

    def test_a_reconnect_with_the_same_chain_is_a_hit(self):
        proxy = self.start()
        for client_id in ("first", "second"):
            done = pub(proxy.port, "devices/device-001/m", "hello", args=["-i", client_id])
            self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(proxy.wait_metric("mqtls_tls_verify_cache_total", listener="mqtts",
                                           result="hit"), 1)
        self.assertEqual(self.lookups(proxy, "miss"), 1)
        other = pub(proxy.port, "devices/device-002/m", "hello", identity="client2")
        self.assertEqual(other.returncode, 0, other.stderr)
        proxy.wait_metric("mqtls_tls_verify_cache_total", at_least=2, listener="mqtts",
                          result="miss")
        self.assertEqual(self.lookups(proxy, "hit"), 1, "another chain was a hit")

    def test_a_cached_chain_revoked_by_a_crl_reload_is_refused(self):
        device = self.device()
        crl = self.workdir / "devices.crl"
        harness.replace_file(self.ca.crl("crl-0", 3600), crl)
        proxy = self.start(crl=[str(crl)])
        self.assertTrue(mqtt5.admitted(proxy.port, device, "d1"))
        self.assertTrue(mqtt5.admitted(proxy.port, device, "d2"))
        proxy.wait_metric("mqtls_tls_verify_cache_total", listener="mqtts", result="hit")

        mqtt5.revoke(self.ca, "device")
        harness.replace_file(self.ca.crl("crl-1", 3600), crl)
        proxy.wait_metric("mqtls_tls_reloads_total", result="ok")
        hits = self.lookups(proxy, "hit")
        self.assertFalse(mqtt5.admitted(proxy.port, device, "d3"), "a revoked device was admitted")
        proxy.wait_access(close="handshake_failed",
                          detail="revoked: certificate verify failed: certificate revoked")
        self.assertEqual(self.lookups(proxy, "hit"), hits)
        self.assertTrue(mqtt5.admitted(proxy.port, (cert("client.pem"), cert("client.key")), "c"))

    def test_a_cached_chain_whose_ca_was_removed_is_refused(self):
        device = self.device()
        client_ca = self.workdir / "client-ca.pem"
        harness.replace_file(CA_BUNDLE, client_ca)
        proxy = self.start(client_ca=str(client_ca))
        self.assertTrue(mqtt5.admitted(proxy.port, device, "d1"))
        self.assertTrue(mqtt5.admitted(proxy.port, device, "d2"))
        proxy.wait_metric("mqtls_tls_verify_cache_total", listener="mqtts", result="hit")

        harness.replace_file(cert("rogue-ca.pem"), client_ca)  # the device's CA is no longer trusted
        proxy.wait_metric("mqtls_tls_reloads_total", result="ok")
        hits = self.lookups(proxy, "hit")
        self.assertFalse(mqtt5.admitted(proxy.port, device, "d3"),
                         "a device of a removed CA was admitted")
        proxy.wait_metric("mqtls_tls_handshake_failures_total", reason="unknown_ca")
        self.assertEqual(self.lookups(proxy, "hit"), hits)

    def test_a_cached_chain_that_expired_since_is_refused(self):
        proxy = self.start()
        not_after = (datetime.datetime.now(datetime.timezone.utc) +
                     datetime.timedelta(seconds=10)).replace(microsecond=0)
        device = self.ca.client("short", "device-short-lived", not_after)
        self.assertTrue(mqtt5.admitted(proxy.port, device, "d1"))
        self.assertTrue(mqtt5.admitted(proxy.port, device, "d2"))
        proxy.wait_metric("mqtls_tls_verify_cache_total", listener="mqtts", result="hit")
        hits = self.lookups(proxy, "hit")
        left = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        if left < 1:
            self.skipTest(f"this machine took {10 - left:.1f} s to issue a certificate and "
                          f"connect twice: too slow to see a cached chain expire")
        time.sleep(left + 1.5)
        self.assertFalse(mqtt5.admitted(proxy.port, device, "d3"), "an expired device was admitted")
        proxy.wait_metric("mqtls_tls_handshake_failures_total", reason="expired")
        self.assertEqual(self.lookups(proxy, "hit"), hits)

    def test_size_zero_looks_nothing_up(self):
        proxy = self.start(verify_cache_size=0)
        device = self.device()
        for client_id in ("first", "second", "third"):
            self.assertTrue(mqtt5.admitted(proxy.port, device, client_id))
        proxy.wait_metric("mqtls_tls_handshakes_total", at_least=3, listener="mqtts", result="ok")
        self.assertEqual(self.lookups(proxy, "hit"), 0)
        self.assertEqual(self.lookups(proxy, "miss"), 0)


if __name__ == "__main__":
    unittest.main()

"""OCSP checking of client certificates (tls.ocsp) against a real `openssl ocsp` responder that
answers from a CA database holding a good and a revoked client certificate. The check runs after
the handshake, before the broker is dialled: a refused client gets a CONNACK with a reason code
and the broker never sees a connection."""

import datetime
import shutil
import socket
import subprocess
import tempfile
import unittest
from pathlib import Path

import harness
import mqtt5
from harness import CA_BUNDLE, IntegrationTest

# MQTT 3.1.1 CONNACK return codes
ACCEPTED, SERVER_UNAVAILABLE, NOT_AUTHORIZED = 0, 3, 5


class OcspTest(IntegrationTest):
    @classmethod
    def setUpClass(cls):
        cls.pki = Path(tempfile.mkdtemp(prefix="mqtls-ocsp-"))
        cls.ca = mqtt5.TestCa(cls.pki / "ca")
        not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
        cls.good = cls.ca.client("good", "ocsp-good", not_after)
        cls.revoked = cls.ca.client("revoked", "ocsp-revoked", not_after)
        mqtt5.revoke(cls.ca, "revoked")
        # Named in the certificate itself; the responder is started on this port by the test.
        cls.aia_port = harness.free_port()
        cls.aia = mqtt5.client_with_ocsp_url(cls.ca, "aia", "ocsp-aia", not_after,
                                             f"http://127.0.0.1:{cls.aia_port}/")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def start_responder(self, **kwargs) -> mqtt5.OcspResponder:
        responder = mqtt5.OcspResponder(self.ca, **kwargs)
        self._track(responder, f"openssl ocsp:{responder.port}")
        return responder

    def start_ocsp_proxy(self, **ocsp) -> harness.Proxy:
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["ocsp"] = {"mode": "on", **ocsp}
        return self.start_proxy(config)

    def connack(self, proxy, identity, client_id="ocsp-client") -> int:
        """The CONNACK return code mqtls answers a CONNECT from identity (chain, key) with."""
        client = mqtt5.raw_client(proxy.port, mqtt5.context_for(*identity))
        self.addCleanup(client.close)
        client.send(harness.connect_packet(level=4, client_id=client_id))
        return client.connack(4)["code"]

    def assert_refused(self, proxy, identity, code, close_reason):
        start = len(self.broker.log())
        self.assertEqual(self.connack(proxy, identity), code)
        proxy.wait_metric("mqtls_mqtt_connect_refused_total", 1, reason=close_reason)
        self.assertEqual(proxy.metric("mqtls_mqtt_connect_forwarded_total"), 0)
        self.assertEqual(self.broker.tcp_connections(start), [])

    def test_good_client_publishes(self):
        responder = self.start_responder()
        proxy = self.start_ocsp_proxy(responder=responder.url)
        start = len(self.broker.log())
        watcher = self.start_sub(self.broker.port, "devices/ocsp-good/#", client_id="watch",
                                 direct=True)
        self.broker.wait_subscribed("watch", start=start)
        chain, key = self.good
        result = subprocess.run(
            ["mosquitto_pub", "-h", "localhost", "-p", str(proxy.port), "--cafile", CA_BUNDLE,
             "--cert", chain, "--key", key, "-t", "devices/ocsp-good/t", "-m", "checked",
             "-q", "1"], capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(watcher.wait(), (0, b"checked\n"))
        self.assertEqual(proxy.metric("mqtls_ocsp_checks_total", result="good"), 1)
        self.assertEqual(responder.requests(), 1)

    def test_revoked_client_refused(self):
        responder = self.start_responder()
        proxy = self.start_ocsp_proxy(responder=responder.url)
        self.assert_refused(proxy, self.revoked, NOT_AUTHORIZED, "ocsp_revoked")
        self.assertEqual(proxy.metric("mqtls_ocsp_checks_total", result="revoked"), 1)
        proxy.wait_access(close="ocsp_revoked")

    def test_responder_down_fail_closed_refuses(self):
        proxy = self.start_ocsp_proxy(responder=f"http://127.0.0.1:{harness.free_port()}/",
                                      policy="fail_closed")
        self.assert_refused(proxy, self.good, SERVER_UNAVAILABLE, "ocsp_unavailable")
        self.assertEqual(proxy.metric("mqtls_ocsp_checks_total", result="unavailable"), 1)

    def test_responder_down_fail_open_accepts(self):
        proxy = self.start_ocsp_proxy(responder=f"http://127.0.0.1:{harness.free_port()}/",
                                      policy="fail_open")
        self.assertEqual(self.connack(proxy, self.good), ACCEPTED)
        self.assertEqual(proxy.metric("mqtls_ocsp_checks_total", result="unavailable"), 1)
        proxy.wait_for_log(r"accepted by policy fail_open")

    def test_silent_responder_times_out(self):
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (in the backlog) but never answers
        proxy = self.start_ocsp_proxy(responder=f"http://127.0.0.1:{silent.getsockname()[1]}/",
                                      timeout="300ms")
        self.assert_refused(proxy, self.good, SERVER_UNAVAILABLE, "ocsp_unavailable")
        self.assertGreaterEqual(proxy.metric("mqtls_ocsp_request_duration_seconds_sum"), 0.25)

    def test_cached_answer_used_without_a_second_request(self):
        responder = self.start_responder(nrequest=1)  # answers once, then exits
        proxy = self.start_ocsp_proxy(responder=responder.url)
        self.assertEqual(self.connack(proxy, self.good, "first"), ACCEPTED)
        responder.wait()  # gone: a second request could only fail (and fail_closed refuses)
        for attempt in range(3):  # two workers: the cache is shared by both
            self.assertEqual(self.connack(proxy, self.good, f"again-{attempt}"), ACCEPTED)
        self.assertEqual(proxy.metric("mqtls_ocsp_cache_misses_total"), 1)
        self.assertEqual(proxy.metric("mqtls_ocsp_cache_hits_total"), 3)
        self.assertEqual(proxy.metric("mqtls_ocsp_checks_total", result="good"), 4)

    def test_revoked_answer_cached_too(self):
        responder = self.start_responder(nrequest=1)
        proxy = self.start_ocsp_proxy(responder=responder.url)
        self.assertEqual(self.connack(proxy, self.revoked, "first"), NOT_AUTHORIZED)
        responder.wait()
        self.assertEqual(self.connack(proxy, self.revoked, "second"), NOT_AUTHORIZED)
        self.assertEqual(proxy.metric("mqtls_ocsp_checks_total", result="revoked"), 2)

    def test_certificate_aia_url_used_without_responder_setting(self):
        responder = mqtt5.OcspResponder(self.ca, name="aia-ocsp", port=self.aia_port)
        self._track(responder, "openssl ocsp (AIA)")
        proxy = self.start_ocsp_proxy()
        self.assertEqual(self.connack(proxy, self.aia, "aia"), ACCEPTED)
        self.assertEqual(responder.requests(), 1)
        # A certificate naming no responder cannot be checked: refused (fail_closed).
        self.assertEqual(self.connack(proxy, self.good, "no-aia"), SERVER_UNAVAILABLE)

    def test_off_by_default(self):
        proxy = self.start_proxy(self.proxy_config(self.broker.port))
        self.assertEqual(self.connack(proxy, self.revoked), ACCEPTED)
        self.assertEqual(proxy.metric("mqtls_ocsp_checks_total"), 0)

    def test_https_responder_refused_at_start(self):
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["ocsp"] = {"mode": "on", "responder": "https://x/"}
        path = self.workdir / "https.yaml"
        path.write_text(harness.to_yaml(config))
        result = harness.run_mqtls("--config", str(path), expected_exit=2)
        self.assertRegex(result.stderr, r"https\.yaml:\d+:\d+: listeners\[0\]\.tls\.ocsp\."
                                        r"responder: https OCSP responders are not supported")


if __name__ == "__main__":
    unittest.main()

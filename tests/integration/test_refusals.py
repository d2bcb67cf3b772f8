"""Clients refused during the TLS handshake: no certificate, untrusted, expired, not yet valid,
revoked, a CertificateVerify signed with a key that is not the certificate's, and protocol
versions below the listener's minimum. None of them may reach the broker."""

import ssl
import subprocess
import unittest

import harness
import mqtt5
from harness import CA_BUNDLE, IntegrationTest, cert, pub

FAILURES = "mqtls_tls_handshake_failures_total"


def failure_reasons(after, before):
    """{reason: count} of the handshake failures counted between two metric snapshots."""
    delta = {}
    for (name, labels), value in after.items():
        if name == FAILURES:
            reason = dict(labels)["reason"]
            grown = value - before.get_value(FAILURES, reason=reason)
            if grown:
                delta[reason] = grown
    return delta


def s_client(port, *args):
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         "-CAfile", CA_BUNDLE, "-cert", cert("client.pem"), "-key", cert("client.key"), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


class RefusalTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        tls = {"cert": cert("server-ec.pem"), "key": cert("server-ec.key"),
               "client_ca": CA_BUNDLE}
        self.nocrl_port = harness.free_port()
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["crl"] = cert("crl.pem")
        config["listeners"].append({"name": "nocrl", "bind": "127.0.0.1",
                                    "port": self.nocrl_port, "tls": tls})
        self.proxy = self.start_proxy(config)

    def assert_refused_at_tls(self, identity, reason, proxy=None, version="mqttv311",
                              attempt=None):
        """A client fails to connect, mqtls counts one handshake failure with reason, and the
        broker never sees a connection. The client is mosquitto_pub with the identity's
        certificate, or attempt(port), which must fail by itself."""
        proxy = proxy or self.proxy
        start = len(self.broker.log())
        before = proxy.metrics()
        if attempt is None:
            result = pub(proxy.port, "devices/device-001/refused", "must not arrive",
                         identity=identity, version=version)
            self.assertNotEqual(result.returncode, 0,
                                f"mosquitto_pub succeeded with {identity}: {result.stderr!r}")
        else:
            attempt(proxy.port)
        closed = before.get_value("mqtls_connections_closed_total", reason="handshake_failed")
        proxy.wait_metric("mqtls_connections_closed_total", closed + 1, reason="handshake_failed")
        after = proxy.metrics()
        self.assertEqual(failure_reasons(after, before), {reason: 1})
        for result in ("ok", "resumed"):
            self.assertEqual(after.get_value("mqtls_tls_handshakes_total", result=result),
                             before.get_value("mqtls_tls_handshakes_total", result=result))
        self.assertEqual(after.get_value("mqtls_mqtt_connect_forwarded_total"),
                         before.get_value("mqtls_mqtt_connect_forwarded_total"))
        self.assertEqual(after.get_value("mqtls_connections_closed_total",
                                         reason="handshake_failed"), closed + 1)
        self.assertEqual(self.broker.tcp_connections(start), [])

    def assert_accepted(self, port, identity="client", args=()):
        start = len(self.broker.log())
        result = pub(port, "devices/device-001/ok", "fine", identity=identity,
                     args=["-i", "control", *args])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.broker.wait_for_log(r"New client connected from \S+ as control ", start=start)

    def test_no_client_certificate(self):
        self.assert_refused_at_tls(None, "no_certificate")
        self.assert_refused_at_tls(None, "no_certificate", version="mqttv5")

    def test_certificate_from_another_ca(self):
        # CN=device-001 and an issuer with the root's exact subject, signed by a rogue key.
        self.assert_refused_at_tls("client-wrongca", "unknown_ca")

    def test_expired_certificate(self):
        self.assert_refused_at_tls("client-expired", "expired")
        self.proxy.wait_access(close="handshake_failed",
                               detail="expired: certificate verify failed: "
                                      "certificate has expired")

    def test_not_yet_valid_certificate(self):
        self.assert_refused_at_tls("client-notyet", "not_yet_valid")
        self.proxy.wait_access(close="handshake_failed",
                               detail="not_yet_valid: certificate verify failed: "
                                      "certificate is not yet valid")

    def test_revoked_certificate(self):
        self.assert_refused_at_tls("client-revoked", "revoked")
        self.proxy.wait_access(close="handshake_failed",
                               detail="revoked: certificate verify failed: "
                                      "certificate revoked")
        # The CRL is what refuses it: the same certificate passes where no CRL is configured,
        # and a certificate that is not revoked passes where it is.
        self.assert_accepted(self.nocrl_port, identity="client-revoked")
        self.assert_accepted(self.proxy.port)

    def test_crl_check_chain(self):
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"].update({"crl": [cert("crl-chain.pem")],
                                              "crl_check": "chain"})
        chain = self.start_proxy(config, name="mqtls-crl-chain")
        self.assert_refused_at_tls("client-revoked", "revoked", proxy=chain)
        self.assert_accepted(chain.port)

    def test_leaf_only_client_chain_is_completed_from_client_ca(self):
        # The client sends its leaf without the intermediate; client_ca holds it.
        start = len(self.broker.log())
        result = pub(self.proxy.port, "devices/device-001/leaf", "leaf only", identity=None,
                     args=["--cert", cert("client-leafonly.pem"), "--key", cert("client.key"),
                           "-i", "leaf-only"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.broker.wait_for_log(r"New client connected from \S+ as leaf-only .*u'device-001'",
                                 start=start)

    def test_mismatched_key(self):
        # A client presents client.pem (device-001, valid) but signs its CertificateVerify with
        # another key, as a thief holding only the certificate would. Stock clients refuse to
        # load such a pair, so tests/tools/forged_key_client hands OpenSSL a key with the
        # certificate's public half and the other key's private half.
        forged = cert("client-mismatch.key")
        for version in ("1.2", "1.3"):
            with self.subTest(version=version):
                def attempt(port, version=version):
                    result = mqtt5.forged_key_client(port, cert("client.pem"), forged, version)
                    # 1.2: the handshake fails on the server's alert; 1.3: the client finishes
                    # its side first, then finds the connection closed instead of a CONNACK.
                    self.assertEqual(result.returncode, 1 if version == "1.2" else 2,
                                     result.stdout + result.stderr)
                    if version == "1.2":
                        self.assertIn("alert decrypt error", result.stdout)

                self.assert_refused_at_tls(None, "error", attempt=attempt)
                self.proxy.wait_access(close="handshake_failed", detail="error: bad signature")
        # The same tool signing with the certificate's own key is an ordinary, accepted client:
        # what mqtls refused above is the signature.
        start = len(self.broker.log())
        result = mqtt5.forged_key_client(self.proxy.port, cert("client.pem"), cert("client.key"))
        self.assertEqual((result.returncode, result.stdout), (0, "connack 0\n"), result.stderr)
        self.broker.wait_for_log(r"New client connected from \S+ as forged-key .*u'device-001'",
                                 start=start)

    def test_tls_1_1_is_refused(self):
        def s_client_tls11(port):
            result = s_client(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertNotEqual(result.returncode, 0, result.stdout)
            # The client offered TLS 1.1 and the server answered with a protocol_version alert.
            self.assertIn("alert protocol version", result.stderr)
            self.assertIn("Cipher is (NONE)", result.stdout)

        self.assert_refused_at_tls("client", "protocol_version", attempt=s_client_tls11)

    def test_min_version_1_3_refuses_tls_1_2(self):
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["min_version"] = "1.3"
        strict = self.start_proxy(config, name="mqtls-tls13")

        # mosquitto_pub --tls-version tlsv1.2 only sets a minimum (it still offers TLS 1.3), so
        # the TLS 1.2-only clients are Python's ssl and openssl s_client.
        def python_tls12(port):
            with self.assertRaises(ssl.SSLError) as caught:
                harness.RawClient(port, max_version=ssl.TLSVersion.TLSv1_2)
            self.assertIn("PROTOCOL_VERSION", str(caught.exception).upper())

        def s_client_tls12(port):
            result = s_client(port, "-tls1_2")
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn("alert protocol version", result.stderr)

        self.assert_refused_at_tls("client", "protocol_version", proxy=strict,
                                   attempt=python_tls12)
        self.assert_refused_at_tls("client", "protocol_version", proxy=strict,
                                   attempt=s_client_tls12)
        self.assert_accepted(strict.port, args=["--tls-version", "tlsv1.3"])
        self.assertEqual(strict.metric("mqtls_tls_negotiated_total", version="TLSv1.2"), 0)
        self.assertEqual(strict.metric("mqtls_tls_negotiated_total", version="TLSv1.3"), 1)
        # The default listener (minimum 1.2) does accept TLS 1.2.
        client = self.raw(self.proxy.port, max_version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(client.sock.version(), "TLSv1.2")

if __name__ == "__main__":
    unittest.main()

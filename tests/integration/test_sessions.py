"""TLS session resumption never grants more than a full handshake would: a session resumes for
a client that connected normally, but not once its certificate has expired (the resumption
falls back to a full handshake, which refuses the certificate), and not after mqtls refused the
client at the MQTT level. TLS 1.2 and 1.3, with Python's ssl client and its saved sessions."""

import datetime
import ssl
import time
import unittest

import mqtt5
from harness import IntegrationTest, cert, connect_packet

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
DISCONNECT = b"\xe0\x00"
# Lifetime of the short-lived certificate: long enough for a full handshake and one
# resumption (also under sanitizers), short enough to wait for.
LIFETIME_S = 6


class SessionTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def start(self, identity=None):
        config = self.proxy_config(self.broker.port)
        if identity is not None:
            config["identity"] = identity
        return self.start_proxy(config)

    def session_of(self, port, context, session=None, client_id="resumer", level=4):
        """Connects (resuming session if given), gets CONNACK 0, disconnects cleanly; returns
        (the TLS session to resume next, whether this connection resumed)."""
        client = mqtt5.raw_client(port, context, session)
        self.addCleanup(client.close)
        client.send(connect_packet(level=level, client_id=client_id))
        self.assertEqual(client.connack(level)["code"], 0)
        saved, reused = client.sock.session, client.sock.session_reused
        client.send(DISCONNECT)
        client.expect_closed()
        self.assertIsNotNone(saved)
        return saved, reused

    def refused_session(self, port, context, client_id, level, code):
        """Connects without resuming, sends a CONNECT that mqtls refuses with CONNACK code;
        returns the TLS session of that connection."""
        client = mqtt5.raw_client(port, context)
        self.addCleanup(client.close)
        self.assertFalse(client.sock.session_reused)
        client.send(connect_packet(level=level, client_id=client_id))
        self.assertEqual(client.connack(level)["code"], code)
        client.expect_closed()
        self.assertIsNotNone(client.sock.session)
        return client.sock.session

    # A normal client resumes --------------------------------------------------------------

    def check_normal_resumption(self, version):
        proxy = self.start()
        context = mqtt5.context_for(cert("client.pem"), cert("client.key"), version)
        session, reused = self.session_of(proxy.port, context)
        self.assertFalse(reused)
        start = len(self.broker.log())
        _, reused = self.session_of(proxy.port, context, session, client_id="resumed")
        self.assertTrue(reused, "a fresh session of a valid client did not resume")
        # The resumed connection carries the certificate identity of the full handshake.
        self.assertEqual(self.broker.connected_clients(start), [("resumed", "device-001")])
        proxy.wait_access(client_id="resumed", identity="device-001")

    def test_normal_client_resumes_tls12(self):
        self.check_normal_resumption(TLS12)

    def test_normal_client_resumes_tls13(self):
        self.check_normal_resumption(TLS13)

    # The certificate expires --------------------------------------------------------------

    def check_expired_certificate_does_not_resume(self, version):
        proxy = self.start()
        not_after = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + \
            datetime.timedelta(seconds=LIFETIME_S)
        chain, key = mqtt5.TestCa(self.workdir / "ca").client("short", "device-short", not_after)
        context = mqtt5.context_for(chain, key, version)
        session, reused = self.session_of(proxy.port, context, client_id="short-1")
        self.assertFalse(reused)
        # While the certificate is valid, the session does resume (so the refusal below is
        # about the expiry, not about resumption being off).
        session, reused = self.session_of(proxy.port, context, session, client_id="short-2")
        self.assertTrue(reused, "the session did not resume while the certificate was valid")
        remaining = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        self.assertGreater(remaining, 0, "the certificate expired before the test could resume")
        time.sleep(remaining + 1.5)

        start = len(self.broker.log())
        try:
            client = mqtt5.raw_client(proxy.port, context, session)
        except ssl.SSLError as error:  # TLS 1.2: the client learns it in the handshake
            self.assertIn("CERTIFICATE_EXPIRED", str(error).upper())
        else:  # TLS 1.3: the server's verdict on the client certificate comes after
            self.addCleanup(client.close)
            self.assertFalse(client.sock.session_reused,
                             "resumed a session whose client certificate has expired")
            # Only read: a write could fail on the closed socket before the alert is read.
            self.assertEqual(client.expect_closed(), b"")
            self.assertIn("CERTIFICATE_EXPIRED", str(client.close_error).upper())
        proxy.wait_access(close="handshake_failed",
                          detail="expired: certificate verify failed: "
                                 "certificate has expired")
        self.assertEqual(self.broker.tcp_connections(start), [])

    def test_expired_certificate_does_not_resume_tls12(self):
        self.check_expired_certificate_does_not_resume(TLS12)

    def test_expired_certificate_does_not_resume_tls13(self):
        self.check_expired_certificate_does_not_resume(TLS13)

    # Refused at the MQTT level ------------------------------------------------------------

    def check_refused_client_does_not_resume(self, version):
        proxy = self.start({"client_id": "require_match"})
        context = mqtt5.context_for(cert("client.pem"), cert("client.key"), version)
        session = self.refused_session(proxy.port, context, "not-my-cn", 4, 0x02)
        _, reused = self.session_of(proxy.port, context, session, client_id="device-001")
        self.assertFalse(reused, "a client refused at the MQTT level resumed its session")
        # The same client id policy lets a correct client id through, and that session resumes.
        session, _ = self.session_of(proxy.port, context, client_id="device-001")
        _, reused = self.session_of(proxy.port, context, session, client_id="device-001")
        self.assertTrue(reused)

    def test_refused_client_does_not_resume_tls12(self):
        self.check_refused_client_does_not_resume(TLS12)

    def test_refused_client_does_not_resume_tls13(self):
        self.check_refused_client_does_not_resume(TLS13)

    def test_client_without_identity_does_not_resume(self):
        # client-nocn has no CN: refused with "bad user name or password" (MQTT 5: 0x86).
        proxy = self.start()
        context = mqtt5.context_for(cert("client-nocn.pem"), cert("client-nocn.key"), TLS13)
        session = self.refused_session(proxy.port, context, "nocn", 5, 0x86)
        client = mqtt5.raw_client(proxy.port, context, session)
        self.addCleanup(client.close)
        self.assertFalse(client.sock.session_reused,
                         "a client refused for its identity resumed its session")


if __name__ == "__main__":
    unittest.main()

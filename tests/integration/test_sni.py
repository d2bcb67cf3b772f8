"""SNI sites and several certificates per listener: the name a client asks for picks the
certificate served (exact names, one-label wildcards, case-insensitive, the listener's own
certificate otherwise), the client CA bundle that verifies the client and the identity policy
injected into its CONNECT; a session made on one site never resumes on another; a listener with
an ECDSA and an RSA certificate serves ECDSA to clients that take it and RSA to the others; a
site's files reload like the listener's; and --check places a site's problems at file:line:col."""

import re
import shutil
import socket
import ssl
import subprocess
import unittest

import mqtt5

from harness import (CA_BUNDLE, CONNACK, IntegrationTest, RawClient, cert, connect_packet,
                     free_port, run_mqtls, wait_until)

FLEET_B = "fleet-b.mqtls.test"
FLEET_C = "fleet-c.mqtls.test"


def leaf_der(path: str) -> bytes:
    """The DER of the first certificate of a PEM file."""
    pem = open(path).read()
    first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first)


def tls_client(port: int, server_name: str | None, identity: str | None = "client",
               version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> RawClient:
    """A RawClient that sends server_name as SNI (None: no SNI) and checks the server's chain
    against the test CAs but not its name. Raises ssl.SSLError if the handshake fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(CA_BUNDLE)
    if identity:
        context.load_cert_chain(cert(f"{identity}.pem"), cert(f"{identity}.key"))
    if version:
        context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock = context.wrap_socket(raw, server_hostname=server_name)
        early = b""
        if version is None or version == ssl.TLSVersion.TLSv1_3:
            # A refused client certificate shows in TLS 1.3 only on the first read (the server
            # sends nothing else before the CONNECT).
            sock.settimeout(0.3)
            try:
                early = sock.recv(1)
                if not early:
                    raise ConnectionError("closed after the handshake")
            except (socket.timeout, TimeoutError):
                pass
            sock.settimeout(10)
    except BaseException:
        raw.close()
        raise
    client = RawClient.__new__(RawClient)
    client.sock, client.buffer, client.close_error = sock, early, None
    return client


class SniTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def sites_config(self, site_b_cert=None, site_b_key=None):
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["sni"] = [
            {   # a second fleet: its own CA, its own server certificate, names from the SAN
                "names": [FLEET_B, f"*.{FLEET_B}"],
                "cert": site_b_cert or cert("server-rsa.pem"),
                "key": site_b_key or cert("server-rsa.key"),
                "client_ca": cert("rogue-ca.pem"),
                "identity": {"username_from": ["san_dns"]},
            },
            {   # the listener's trust, another identity policy
                "names": [FLEET_C],
                "cert": cert("server-ec.pem"),
                "key": cert("server-ec.key"),
                "identity": {"username_from": ["san_uri"]},
            },
        ]
        return config

    def served(self, port, server_name, identity="client"):
        client = tls_client(port, server_name, identity)
        try:
            return client.sock.getpeercert(binary_form=True)
        finally:
            client.sock.close()

    def username_through(self, port, server_name, identity, client_id):
        """Connects with SNI server_name as identity; returns the user name the broker saw."""
        start = len(self.broker.log())
        client = tls_client(port, server_name, identity)
        try:
            client.send(connect_packet(client_id=client_id))
            self.assertEqual(client.connack()["code"], 0)
            wait_until(lambda: self.broker.connected_clients(start), what="broker connection")
            return dict(self.broker.connected_clients(start))[client_id]
        finally:
            client.sock.close()

    def test_name_picks_certificate(self):
        proxy = self.start_proxy(self.sites_config())
        rsa, ec = leaf_der(cert("server-rsa.pem")), leaf_der(cert("server-ec.pem"))
        for name, expected in [(FLEET_B, rsa), ("FLEET-B.MQTLS.TEST", rsa),
                               (f"{FLEET_B}.", rsa), (f"dev1.{FLEET_B}", rsa),
                               (f"a.dev1.{FLEET_B}", ec), ("localhost", ec),
                               ("unknown.example", ec), (None, ec)]:
            with self.subTest(name=name):
                identity = "client-wrongca" if expected == rsa else "client"
                self.assertEqual(self.served(proxy.port, name, identity), expected)

    def test_site_verifies_with_its_own_ca_and_policy(self):
        proxy = self.start_proxy(self.sites_config())
        # Fleet B's device (rogue CA) is accepted on its site, named by its SAN DNS name.
        self.assertEqual(self.username_through(proxy.port, FLEET_B, "client-wrongca", "b1"),
                         "device-001.devices.mqtls.test")
        # The listener's own clients keep the global policy (CN) ...
        self.assertEqual(self.username_through(proxy.port, "localhost", "client", "a1"),
                         "device-001")
        # ... and fleet C (same trust as the listener) uses its own policy (SAN URI).
        self.assertTrue(self.username_through(proxy.port, FLEET_C, "client", "c1")
                        .startswith("spiffe://"))
        # Each site refuses the other's devices during the handshake.
        for name, identity in [(FLEET_B, "client"), ("localhost", "client-wrongca"),
                               (FLEET_C, "client-wrongca")]:
            with self.subTest(name=name, identity=identity):
                with self.assertRaises((ssl.SSLError, ConnectionError)):
                    client = tls_client(proxy.port, name, identity)
                    client.send(connect_packet(client_id="x"))
                    client.connack()

    def s_client(self, port, server_name, sess_out=None, sess_in=None):
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
                "-servername", server_name, "-CAfile", CA_BUNDLE, "-cert", cert("client.pem"),
                "-key", cert("client.key"), "-ign_eof", "-nocommands"]
        if sess_out:
            args += ["-sess_out", sess_out]
        if sess_in:
            args += ["-sess_in", sess_in]
        result = subprocess.run(args, input=connect_packet(client_id="s") + b"\xe0\x00",
                                capture_output=True, timeout=60)
        return b"\x20\x02\x00\x00" in result.stdout, b"\nReused, TLSv" in result.stdout

    def test_sessions_stay_on_their_site(self):
        proxy = self.start_proxy(self.sites_config())
        saved = str(self.workdir / "fleet-c.sess")
        self.assertEqual(self.s_client(proxy.port, FLEET_C, sess_out=saved), (True, False))
        self.assertEqual(self.s_client(proxy.port, FLEET_C, sess_in=saved), (True, True),
                         "a session did not resume on its own site")
        self.assertEqual(self.s_client(proxy.port, "localhost", sess_in=saved), (True, False),
                         "a session of one site resumed on another")

    def test_site_certificate_reloads(self):
        site_cert, site_key = self.workdir / "site.pem", self.workdir / "site.key"
        shutil.copy(cert("server-rsa.pem"), site_cert)
        shutil.copy(cert("server-rsa.key"), site_key)
        proxy = self.start_proxy(self.sites_config(str(site_cert), str(site_key)))
        self.assertEqual(self.served(proxy.port, FLEET_B, "client-wrongca"),
                         leaf_der(cert("server-rsa.pem")))
        for source, target in [("server-ec.key", site_key), ("server-ec.pem", site_cert)]:
            staged = target.with_suffix(".new")
            shutil.copy(cert(source), staged)
            staged.replace(target)
        wait_until(lambda: self.served(proxy.port, FLEET_B, "client-wrongca")
                   == leaf_der(cert("server-ec.pem")), what="the new site certificate")


class TwoKeyTypesTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        config = self.proxy_config(self.broker.port)
        tls = config["listeners"][0]["tls"]
        del tls["cert"], tls["key"]
        tls["certificates"] = [{"cert": cert("server-ec.pem"), "key": cert("server-ec.key")},
                               {"cert": cert("server-rsa.pem"), "key": cert("server-rsa.key")}]
        # The staple is about the first (ECDSA) certificate only.
        ca = mqtt5.TestCa(self.workdir / "ca")
        tls["ocsp_staple"] = ca.ocsp_response("server-ec-staple", cert("server-ec.pem"))
        self.proxy = self.start_proxy(config)

    def served_tls13(self, sigalgs=None, stapled=None):
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.proxy.port}", "-tls1_3",
                "-status",
                "-CAfile", CA_BUNDLE, "-cert", cert("client.pem"), "-key", cert("client.key")]
        if sigalgs:
            args += ["-sigalgs", sigalgs]
        result = subprocess.run(args, input=b"", capture_output=True, timeout=60)
        match = re.search(rb"Peer signature type: (\S+)", result.stdout)
        self.assertIsNotNone(match, result.stdout.decode(errors="replace")[-2000:])
        if stapled is not None:
            self.assertEqual(b"OCSP Response Status: successful" in result.stdout, stapled)
            self.assertEqual(b"OCSP response: no response sent" in result.stdout, not stapled)
        return match.group(1).decode()

    def test_ecdsa_first_rsa_for_clients_without_it(self):
        self.assertEqual(self.served_tls13(stapled=True), "ECDSA")
        self.assertEqual(
            self.served_tls13("rsa_pss_rsae_sha256:rsa_pss_rsae_sha384", stapled=False),
            "RSA-PSS", "the ECDSA certificate's staple was sent with the RSA certificate")

    def test_tls12_cipher_picks_certificate(self):
        ec, rsa = leaf_der(cert("server-ec.pem")), leaf_der(cert("server-rsa.pem"))
        for ciphers, expected in [("ECDHE-ECDSA-AES128-GCM-SHA256", ec),
                                  ("ECDHE-RSA-AES128-GCM-SHA256", rsa)]:
            with self.subTest(ciphers=ciphers):
                client = tls_client(self.proxy.port, "localhost", "client",
                                    ssl.TLSVersion.TLSv1_2, ciphers)
                try:
                    self.assertEqual(client.sock.getpeercert(binary_form=True), expected)
                    client.send(connect_packet(client_id="tls12"))
                    self.assertEqual(client.connack()["code"], 0)
                finally:
                    client.sock.close()


CHECK_CONFIG = """\
workers: 1
listeners:
  - name: a
    port: {port}
    tls:
      cert: {cert}
      key: {key}
      client_ca: {ca}
      sni:
        - names: [good.mqtls.test]
          cert: {cert}
          key: {wrong_key}
        - names: [good.mqtls.test, "bad name"]
          cert: {cert}
          key: {key}
        - cert: {cert}
          key: {key}
upstream:
  port: 1883
"""


class SniCheckTest(IntegrationTest):
    def test_site_problems_are_placed(self):
        path = self.workdir / "sni.yaml"
        path.write_text(CHECK_CONFIG.format(port=free_port(), cert=cert("server-ec.pem"),
                                            key=cert("server-ec.key"), ca=CA_BUNDLE,
                                            wrong_key=cert("server-rsa.key")))
        result = run_mqtls("--check", "--config", str(path), expected_exit=2)
        out = result.stdout + result.stderr
        self.assertRegex(out, rf"{re.escape(str(path))}:13:\d+: .*'bad name' is not a DNS name")
        self.assertRegex(out, r":13:\d+: .*'good.mqtls.test' is already served")
        self.assertRegex(out, r":16:\d+: .*names")
        # The key/certificate mismatch of the first site, found by the TLS check, only shows
        # once the YAML is valid: fix the YAML and check again.
        fixed = CHECK_CONFIG.replace('[good.mqtls.test, "bad name"]', "[other.mqtls.test]")
        fixed = fixed.replace("        - cert: {cert}\n          key: {key}\n", "")
        path.write_text(fixed.format(port=free_port(), cert=cert("server-ec.pem"),
                                     key=cert("server-ec.key"), ca=CA_BUNDLE,
                                     wrong_key=cert("server-rsa.key")))
        result = run_mqtls("--check", "--config", str(path), expected_exit=2)
        self.assertRegex(result.stdout + result.stderr, r":12:\d+: .*key")


if __name__ == "__main__":
    unittest.main()

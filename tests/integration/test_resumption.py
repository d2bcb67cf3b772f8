"""TLS session resumption as openssl s_client sees it (-sess_out, then -sess_in: "Reused" or
"New" in its output), TLS 1.2 and 1.3: the default stateful store resumes; in tickets mode two
mqtls processes given the same ticket key file resume each other's sessions (replicas behind a
load balancer) while one with another key file does not; and a session made before the client
certificate was revoked is not resumed by an mqtls that has the CRL (a full handshake follows,
which refuses the certificate), while an unrevoked client's session is. The access line of a
resumed connection names the SNI it was made with, TLS 1.2 included. session.lifetime counts
from the full handshake, not from the latest of the sessions a TLS 1.3 client is renewed."""

import base64
import datetime
import os
import subprocess
import time
import unittest

import mqtt5
from harness import CA_BUNDLE, IntegrationTest, cert, connect_packet, run_mqtls

DISCONNECT = b"\xe0\x00"
VERSIONS = {"1.2": "-tls1_2", "1.3": "-tls1_3"}


class ResumptionTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def key_file(self, name, keys=2):
        """A ticket key file: base64 lines of random 80-byte keys (HAProxy's format)."""
        path = self.workdir / name
        path.write_text("".join(base64.b64encode(os.urandom(80)).decode() + "\n"
                                for _ in range(keys)))
        return str(path)

    def start(self, name, session=None, crl=None):
        config = self.proxy_config(self.broker.port)
        tls = config["listeners"][0]["tls"]
        if session is not None:
            tls["session"] = session
        if crl is not None:
            tls["crl"] = crl
        return self.start_proxy(config, name=name)

    def s_client(self, port, version, identity, sess_out=None, sess_in=None, files=None,
                 servername=None):
        """One MQTT connection through s_client (CONNECT, DISCONNECT: the broker ends it, so
        the TLS 1.3 ticket has been read); returns (whether the broker accepted the CONNECT,
        whether s_client reports the session reused)."""
        chain, key = files or (cert(f"{identity}.pem"), cert(f"{identity}.key"))
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", VERSIONS[version],
                "-CAfile", CA_BUNDLE, "-cert", chain, "-key", key, "-ign_eof", "-nocommands"]
        if sess_out:
            args += ["-sess_out", sess_out]
        if sess_in:
            args += ["-sess_in", sess_in]
        if servername:
            args += ["-servername", servername]
        result = subprocess.run(args, input=connect_packet(client_id=identity) + DISCONNECT,
                                capture_output=True, timeout=60)
        # s_client reports "New" before it learns that the server refused the handshake, so
        # completion is judged by the broker's CONNACK (0x20, accepted) reaching the client.
        accepted = b"\x20\x02\x00\x00" in result.stdout
        return accepted, b"\nReused, TLSv" in result.stdout

    def sessions(self, tag):
        return str(self.workdir / f"{tag}.sess")

    # Stateful (default) -------------------------------------------------------------------

    def check_stateful(self, version):
        proxy = self.start("mqtls")
        saved = self.sessions(f"stateful-{version}")
        self.assertEqual(self.s_client(proxy.port, version, "client", sess_out=saved),
                         (True, False))
        self.assertEqual(self.s_client(proxy.port, version, "client", sess_in=saved),
                         (True, True), "a stateful session did not resume")
        proxy.wait_access(client_id="client", resumed="true")

    def test_stateful_tls12(self):
        self.check_stateful("1.2")

    def test_stateful_tls13(self):
        self.check_stateful("1.3")

    def check_resumed_sni(self, version):
        """The access line of a resumed connection names the SNI its ClientHello sent."""
        proxy = self.start("mqtls")
        saved = self.sessions(f"sni-{version}")
        self.assertEqual(self.s_client(proxy.port, version, "client", sess_out=saved,
                                       servername="broker.example"), (True, False))
        self.assertEqual(self.s_client(proxy.port, version, "client", sess_in=saved,
                                       servername="broker.example"), (True, True))
        proxy.wait_access(resumed="false", sni="broker.example")
        proxy.wait_access(resumed="true", sni="broker.example")

    def test_resumed_tls12_session_logs_its_sni(self):
        self.check_resumed_sni("1.2")

    def test_resumed_tls13_session_logs_its_sni(self):
        self.check_resumed_sni("1.3")

    # session.lifetime ---------------------------------------------------------------------

    def check_lifetime_counts_from_the_full_handshake(self, session):
        """A TLS 1.3 client gets a new session at every resumption; session.lifetime still ends
        its resumptions that long after its full handshake, however often it reconnects."""
        proxy = self.start("mqtls", dict(session, lifetime="5s"))
        first, renewed = self.sessions("life-first"), self.sessions("life-renewed")
        self.assertEqual(self.s_client(proxy.port, "1.3", "client", sess_out=first),
                         (True, False))
        done = time.monotonic()  # the full handshake was before this (session times are seconds)
        time.sleep(2.5)
        self.assertEqual(self.s_client(proxy.port, "1.3", "client", sess_in=first,
                                       sess_out=renewed), (True, True))
        time.sleep(max(0.0, done + 6.1 - time.monotonic()))
        # The renewed session is about 3.6 s old, within its own 5 s, but its full handshake
        # was more than 5 s ago.
        self.assertEqual(self.s_client(proxy.port, "1.3", "client", sess_in=renewed),
                         (True, False), "a renewed session outlived session.lifetime")

    def test_stateful_lifetime_counts_from_the_full_handshake(self):
        self.check_lifetime_counts_from_the_full_handshake({})

    def test_ticket_lifetime_counts_from_the_full_handshake(self):
        self.check_lifetime_counts_from_the_full_handshake(
            {"mode": "tickets", "ticket_key_file": self.key_file("life.keys")})

    # Tickets across processes -------------------------------------------------------------

    def check_tickets_across_processes(self, version):
        shared = self.key_file("shared.keys")
        replica_a = self.start("replica-a", {"mode": "tickets", "ticket_key_file": shared})
        replica_b = self.start("replica-b", {"mode": "tickets", "ticket_key_file": shared})
        stranger = self.start("stranger", {"mode": "tickets",
                                           "ticket_key_file": self.key_file("other.keys")})
        saved = self.sessions(f"tickets-{version}")
        self.assertEqual(self.s_client(replica_a.port, version, "client", sess_out=saved),
                         (True, False))
        self.assertEqual(self.s_client(stranger.port, version, "client", sess_in=saved),
                         (True, False), "resumed a ticket of another key file")
        self.assertEqual(self.s_client(replica_b.port, version, "client", sess_in=saved),
                         (True, True), "a replica with the same key file did not resume")

    def test_rewritten_ticket_key_file_is_reloaded(self):
        old_key, new_key = (base64.b64encode(os.urandom(80)).decode() for _ in range(2))
        rotating = self.workdir / "rotating.keys"
        rotating.write_text(old_key + "\n")
        fixed = self.workdir / "fixed.keys"
        fixed.write_text(new_key + "\n")
        replica = self.start("replica", {"mode": "tickets", "ticket_key_file": str(rotating)})
        peer = self.start("peer", {"mode": "tickets", "ticket_key_file": str(fixed)})
        before, after = self.sessions("before-rotation"), self.sessions("after-rotation")
        self.s_client(replica.port, "1.3", "client", sess_out=before)
        self.assertEqual(self.s_client(peer.port, "1.3", "client", sess_in=before),
                         (True, False))
        # Rotation: the new key first (it encrypts), the old one still decrypts.
        staged = self.workdir / "rotating.keys.new"
        staged.write_text(new_key + "\n" + old_key + "\n")
        os.replace(staged, rotating)
        replica.wait_metric("mqtls_tls_reloads_total", result="ok")
        self.s_client(replica.port, "1.3", "client", sess_out=after)
        self.assertEqual(self.s_client(peer.port, "1.3", "client", sess_in=after),
                         (True, True), "the replica did not encrypt with the reloaded key")

    def test_tickets_across_processes_tls12(self):
        self.check_tickets_across_processes("1.2")

    def test_tickets_across_processes_tls13(self):
        self.check_tickets_across_processes("1.3")

    # Revocation ---------------------------------------------------------------------------

    def check_revoked_not_resumed(self, version):
        keys = self.key_file("revocation.keys")
        before = self.start("before", {"mode": "tickets", "ticket_key_file": keys})
        after = self.start("after", {"mode": "tickets", "ticket_key_file": keys},
                           crl=cert("crl.pem"))
        revoked = self.sessions(f"revoked-{version}")
        good = self.sessions(f"good-{version}")
        # Before the CRL, client-revoked.pem is an ordinary client.
        self.assertEqual(self.s_client(before.port, version, "client-revoked", sess_out=revoked),
                         (True, False))
        self.assertEqual(self.s_client(before.port, version, "client", sess_out=good),
                         (True, False))
        self.assertEqual(self.s_client(after.port, version, "client-revoked", sess_in=revoked),
                         (False, False), "resumed the session of a revoked certificate")
        after.wait_access(close="handshake_failed",
                          detail="revoked: certificate verify failed: "
                                 "certificate revoked")
        self.assertEqual(self.s_client(after.port, version, "client", sess_in=good),
                         (True, True), "an unrevoked client's session did not resume")

    def test_revoked_not_resumed_tls12(self):
        self.check_revoked_not_resumed("1.2")

    def test_revoked_not_resumed_tls13(self):
        self.check_revoked_not_resumed("1.3")


    def check_stateful_across_crl_reload(self, version):
        ca = mqtt5.TestCa(self.workdir / "ca")
        not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        doomed = ca.client("doomed", "device-doomed", not_after)
        crl = self.workdir / "devices.crl"
        os.replace(ca.crl("crl-0", 3600), crl)
        proxy = self.start("mqtls", crl=[str(crl)])
        revoked, good = self.sessions(f"doomed-{version}"), self.sessions(f"kept-{version}")
        self.assertEqual(self.s_client(proxy.port, version, "doomed", sess_out=revoked,
                                       files=doomed), (True, False))
        self.assertEqual(self.s_client(proxy.port, version, "client", sess_out=good),
                         (True, False))
        ca._ca("-revoke", doomed[0])
        os.replace(ca.crl("crl-1", 3600), crl)
        proxy.wait_metric("mqtls_tls_reloads_total", result="ok")
        self.assertEqual(self.s_client(proxy.port, version, "doomed", sess_in=revoked,
                                       files=doomed),
                         (False, False), "resumed a session revoked by a reloaded CRL")
        proxy.wait_access(close="handshake_failed",
                          detail="revoked: certificate verify failed: "
                                 "certificate revoked")
        self.assertEqual(self.s_client(proxy.port, version, "client", sess_in=good),
                         (True, True), "a stored session did not survive the reload")

    def test_stateful_across_crl_reload_tls12(self):
        self.check_stateful_across_crl_reload("1.2")

    def test_stateful_across_crl_reload_tls13(self):
        self.check_stateful_across_crl_reload("1.3")

    # Configuration ------------------------------------------------------------------------

    def check_config(self, session_lines):
        """mqtls --check of a listener whose tls section ends with `session_lines`; returns
        its error lines (it must fail)."""
        path = self.workdir / "session.yaml"
        path.write_text("\n".join([
            "listeners:",
            "  - port: 8883",
            "    tls:",
            f"      cert: {cert('server-ec.pem')}",
            f"      key: {cert('server-ec.key')}",
            f"      client_ca: {CA_BUNDLE}",
            *session_lines]) + "\n")
        result = run_mqtls("--check", "--config", str(path))
        self.assertNotEqual(result.returncode, 0, result.stdout + result.stderr)
        return [line for line in (result.stdout + result.stderr).splitlines()
                if line.startswith(str(path) + ":")]

    def test_config_errors_name_the_setting(self):
        path = str(self.workdir / "session.yaml")
        self.assertEqual(self.check_config([
            "      session_timeout: 10s",
            "      session:",
            "        mode: tikets"]), [
            f"{path}:7:24: listeners[0].tls.session_timeout: give either 'session:' or the "
            "older session_cache_size / session_timeout, not both; write 'session: "
            "{cache_size: ..., lifetime: ...}'",
            f"{path}:9:15: listeners[0].tls.session.mode: unknown value 'tikets' (did you mean "
            "'tickets'?); use one of: stateful, tickets"])
        short_key = self.workdir / "short.keys"
        short_key.write_text(base64.b64encode(os.urandom(48)).decode() + "\n")
        errors = self.check_config([
            "      session:",
            "        mode: tickets",
            f"        ticket_key_file: {short_key}"])
        self.assertEqual(len(errors), 1, errors)
        self.assertTrue(errors[0].startswith(
            f"{path}:9:26: listeners[0].tls.session.ticket_key_file: ticket key file "
            f"'{short_key}' line 1 is not the base64 of an 80-byte key"), errors)
        self.assertIn("openssl rand 80 | openssl base64 -A", errors[0])


if __name__ == "__main__":
    unittest.main()

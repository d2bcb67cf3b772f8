"""TLS hot reload without dropping anyone: while clients keep handshaking (full and resumed) and
long-lived subscribers stay connected, the server certificate rotates about twenty times (by
rename, certificate then key and key then certificate, and by swapping a Kubernetes-style
"..data" symlink), and a broken key is written once. No handshake that should succeed is refused,
no connection is dropped, the broken key is rejected and reported (log line naming the file,
mqtls_tls_reloads_total{result="failed"}), and each new certificate is served within seconds,
after exactly one reload per rotation. SIGHUP re-reads the configuration: a new certificate path
applies (and is watched from then on), a changed restart-only key is named in a warning. A CRL
rewritten on disk revokes a client without a restart."""

import datetime
import hashlib
import os
import shutil
import signal
import ssl
import threading
import time
import unittest
from pathlib import Path

import mqtt5
import harness
from harness import (PUBLISH, IntegrationTest, RawClient, cert, connect_packet, free_port,
                     mqtt_str, packet, to_yaml, wait_until)

TLS12 = ssl.TLSVersion.TLSv1_2
DISCONNECT = b"\xe0\x00"
SERVER_EXT = """
[ v3_server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
# How soon a rotated certificate must be served (debounce + build; generous for sanitizers).
SERVED_WITHIN_S = 10.0


class ServerCa(mqtt5.TestCa):
    """The test CA, also issuing server certificates for localhost."""

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.config.write_text(self.config.read_text() + SERVER_EXT)

    def server(self, name: str) -> tuple[str, str]:
        """A fresh server key and certificate chain (leaf + intermediate): (chain, key) paths."""
        key, csr, leaf = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "leaf"))
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(key))
        self._openssl("req", "-new", "-config", str(self.config), "-key", str(key),
                      "-subj", "/O=mqtls test/CN=localhost", "-out", str(csr))
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
        end = start + datetime.timedelta(days=2)
        self._ca("-rand_serial", "-extensions", "v3_server", "-in", str(csr), "-out", str(leaf),
                 "-startdate", mqtt5.asn1_time(start), "-enddate", mqtt5.asn1_time(end))
        chain = self.dir / f"{name}.pem"
        chain.write_text(leaf.read_text() + Path(cert("intermediate-ca.pem")).read_text())
        return str(chain), str(key)

    def revoke(self, chain: str) -> None:
        self._ca("-revoke", chain)


def fingerprint_of(chain: str) -> str:
    return mqtt5.harness.cert_sha256(chain)



def served_fingerprint(port: int) -> str:
    """SHA-256 of the leaf certificate mqtls serves on port (a full handshake, no CONNECT)."""
    client = RawClient(port)
    try:
        return hashlib.sha256(client.sock.getpeercert(binary_form=True)).hexdigest()
    finally:
        client.close()


class HandshakeLoop:
    """Keeps connecting to the given ports until stopped: a TLS handshake (resuming the last
    session every other time), CONNECT, CONNACK 0, DISCONNECT. Every failure is recorded."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.done = 0
        self.resumed = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.context = mqtt5.context_for(cert("client.pem"), cert("client.key"))
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        sessions = {}
        while not self.stop.is_set():
            port = self.ports[self.done % len(self.ports)]
            session = sessions.get(port) if self.done % 2 else None
            try:
                client = mqtt5.raw_client(port, self.context, session)
                try:
                    client.send(connect_packet(client_id=f"loop-{self.done}"))
                    code = client.connack()["code"]
                    if code != 0:
                        self.failures.append(f"#{self.done} on {port}: CONNACK {code}")
                    self.resumed += client.sock.session_reused
                    sessions[port] = client.sock.session
                    client.send(DISCONNECT)
                finally:
                    client.close()
            except Exception as error:  # noqa: BLE001 - every failure is the finding
                self.failures.append(f"#{self.done} on {port}: {type(error).__name__}: {error}")
            self.done += 1

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(60)


class ReloadTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.ca = ServerCa(self.workdir / "ca")

    def listener(self, name: str, chain: Path, key: Path, **tls) -> dict:
        return {"name": name, "bind": "127.0.0.1", "port": free_port(),
                "tls": {"cert": str(chain), "key": str(key), "client_ca": mqtt5.CA_BUNDLE, **tls}}

    def subscriber(self, port: int, client_id: str) -> RawClient:
        client = self.raw_session(port, client_id=client_id, keepalive=0)
        client.subscribe("devices/#")
        return client

    def assert_alive(self, subscribers: list[RawClient], port: int, tag: str) -> None:
        """Each subscriber answers a ping and receives a message published now."""
        publisher = self.raw_session(port, client_id=f"pub-{tag}")
        publisher.send(packet(PUBLISH, mqtt_str("devices/device-001/reload") + tag.encode()))
        for sub in subscribers:
            ptype, _, body = sub.read_packet()
            self.assertEqual(ptype, PUBLISH)
            self.assertTrue(body.endswith(tag.encode()), body)
            sub.ping()

    def wait_served(self, port: int, chain: str, what: str) -> float:
        started = time.monotonic()
        wanted = fingerprint_of(chain)
        wait_until(lambda: served_fingerprint(port) == wanted, SERVED_WITHIN_S,
                   interval=0.05, what=f"the new certificate served after {what}")
        return time.monotonic() - started

    def wait_counted(self, proxy, rotations: int, what: str) -> None:
        """Waits for the reload that made the new certificate served to be counted: the reloader
        publishes the new contexts first and counts the reload once every listener is done."""
        counted = proxy.wait_metric("mqtls_tls_reloads_total", rotations, result="ok")
        self.assertEqual(counted, rotations, f"{what} should end in exactly one reload")

    def k8s_secret(self, root: Path, generation: int, chain: str, key: str) -> None:
        """Publishes chain/key as Kubernetes' AtomicWriter does: a new timestamped directory,
        then an atomic rename of the ..data symlink onto it, then the old one removed."""
        new_dir = root / f"..gen_{generation}"
        new_dir.mkdir()
        shutil.copyfile(chain, new_dir / "tls.crt")
        shutil.copyfile(key, new_dir / "tls.key")
        data = root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        os.symlink(new_dir.name, root / "..data_tmp")
        os.replace(root / "..data_tmp", data)
        if old:
            shutil.rmtree(root / old)
        for name in ("tls.crt", "tls.key"):
            if not (root / name).is_symlink():
                os.symlink(f"..data/{name}", root / name)

    # Rotation under load ------------------------------------------------------------------

    def test_rotations_under_load_refuse_no_one_and_drop_no_one(self):
        files, k8s = self.workdir / "tls", self.workdir / "k8s"
        files.mkdir()
        k8s.mkdir()
        gens = [self.ca.server(f"gen{i}") for i in range(21)]
        harness.replace_file(gens[0][0], files / "server.pem")
        harness.replace_file(gens[0][1], files / "server.key")
        self.k8s_secret(k8s, 0, *gens[0])
        config = self.proxy_config(self.broker.port)
        config["listeners"] = [
            self.listener("files", files / "server.pem", files / "server.key"),
            self.listener("k8s", k8s / "tls.crt", k8s / "tls.key"),
        ]
        proxy = self.start_proxy(config)
        ports = [entry["port"] for entry in config["listeners"]]
        self.assertEqual(served_fingerprint(ports[0]), fingerprint_of(gens[0][0]))
        subscribers = [self.subscriber(port, f"sub-{port}") for port in ports]
        loop = HandshakeLoop(ports)
        self.addCleanup(loop.finish)

        rotations = 0
        for i in range(1, 20):
            chain, key = gens[i]
            first, second = ((chain, files / "server.pem"), (key, files / "server.key"))
            if i % 2 == 0:
                first, second = second, first  # key then certificate
            harness.replace_file(*first)
            time.sleep(0.05)  # two separate writes, as cert-manager makes them
            harness.replace_file(*second)
            self.wait_served(ports[0], chain, f"rotation {i}")
            rotations += 1
            self.wait_counted(proxy, rotations, f"rotation {i}")
        self.k8s_secret(k8s, 1, *gens[20])
        self.wait_served(ports[1], gens[20][0], "the ..data symlink swap")
        rotations += 1
        self.wait_counted(proxy, rotations, "the ..data symlink swap")

        # A broken key: rejected, reported with the file, counted; the old pair stays served.
        log_start = len(proxy.log())
        (files / ".bad").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n"
                                    "-----END PRIVATE KEY-----\n")
        os.replace(files / ".bad", files / "server.key")
        proxy.wait_metric("mqtls_tls_reloads_total", result="failed")
        proxy.wait_for_log(r"TLS reload \(file change\) failed: listener 'files' keeps its "
                           rf"previous context: .*tls\.key: .*{files / 'server.key'}",
                           start=log_start)
        self.assertEqual(served_fingerprint(ports[0]), fingerprint_of(gens[19][0]))
        # The next good change is picked up.
        harness.replace_file(gens[0][1], files / "server.key")
        harness.replace_file(gens[0][0], files / "server.pem")
        self.wait_served(ports[0], gens[0][0], "the repair")
        rotations += 1
        self.wait_counted(proxy, rotations, "the repair")

        loop.finish()
        self.assertEqual(loop.failures, [], f"{len(loop.failures)} of {loop.done} failed")
        self.assertGreater(loop.done, 40)
        self.assert_alive(subscribers, ports[0], "after-rotations")
        self.assertEqual(proxy.metric("mqtls_tls_reloads_total", result="ok"), rotations,
                         "each rotation should end in exactly one reload")
        self.assertEqual(proxy.metric("mqtls_tls_reloads_total", result="failed"), 1)
        self.assertGreater(proxy.metric("mqtls_tls_last_reload_success_timestamp_seconds"), 0)
        self.assertEqual(proxy.metric("mqtls_tls_handshake_failures_total"), 0)

    # SIGHUP --------------------------------------------------------------------------------

    def test_sighup_applies_new_paths_and_names_restart_only_keys(self):
        first, second, third = (self.ca.server(name) for name in ("first", "second", "third"))
        config = self.proxy_config(self.broker.port)
        config["listeners"] = [self.listener("mqtts", first[0], first[1])]
        proxy = self.start_proxy(config)
        port = config["listeners"][0]["port"]
        self.assertEqual(served_fingerprint(port), fingerprint_of(first[0]))

        tls_dir = self.workdir / "second"
        tls_dir.mkdir()
        harness.replace_file(second[0], tls_dir / "server.pem")
        harness.replace_file(second[1], tls_dir / "server.key")
        config["listeners"][0]["tls"].update(cert=str(tls_dir / "server.pem"),
                                             key=str(tls_dir / "server.key"))
        config["limits"]["max_connections"] = 77
        config["worker_scheduling"] = "normal"
        proxy.config_path.write_text(to_yaml(config))
        log_start = len(proxy.log())
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for_log(r"TLS reload \(SIGHUP\): 'limits\.max_connections' changed in .* "
                           r"takes effect only after a restart", start=log_start)
        proxy.wait_for_log(r"TLS reload \(SIGHUP\): 'worker_scheduling' changed in .* "
                           r"takes effect only after a restart", start=log_start)
        self.wait_served(port, second[0], "SIGHUP with a new certificate path")
        self.assertEqual(proxy.metric("mqtls_tls_reloads_total", result="ok"), 1)
        # The new path is watched from now on.
        harness.replace_file(third[1], tls_dir / "server.key")
        harness.replace_file(third[0], tls_dir / "server.pem")
        self.wait_served(port, third[0], "a rotation at the new path")

    def test_sighup_with_a_broken_config_keeps_everything(self):
        proxy = self.start_proxy(self.proxy_config(self.broker.port))
        port = proxy.port
        before = served_fingerprint(port)
        proxy.config_path.write_text(proxy.config_path.read_text() + "\nworkers: [nonsense\n")
        log_start = len(proxy.log())
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for_log(r"TLS reload \(SIGHUP\): .*not applied", start=log_start)
        proxy.wait_metric("mqtls_tls_reloads_total", result="failed")
        self.assertEqual(served_fingerprint(port), before)
        self.assert_round_trip(proxy, self.broker, "after-bad-sighup")

    # CRL -----------------------------------------------------------------------------------

    def test_crl_rewritten_on_disk_revokes_without_restart(self):
        not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        chain, key = self.ca.client("dev", "device-crl", not_after)
        crl_dir = self.workdir / "crl"
        crl_dir.mkdir()
        harness.replace_file(self.ca.crl("crl-0", 3600), crl_dir / "devices.crl")
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["crl"] = [str(crl_dir / "devices.crl")]
        proxy = self.start_proxy(config)
        context = mqtt5.context_for(chain, key, TLS12)
        client = mqtt5.raw_client(proxy.port, context)
        client.send(connect_packet(client_id="before-revocation"))
        self.assertEqual(client.connack()["code"], 0)
        client.close()

        self.ca.revoke(chain)
        harness.replace_file(self.ca.crl("crl-1", 3600), crl_dir / "devices.crl")

        def refused():
            try:
                mqtt5.raw_client(proxy.port, mqtt5.context_for(chain, key, TLS12)).close()
            except ssl.SSLError as error:
                return str(error)
            return None

        error = wait_until(refused, SERVED_WITHIN_S, interval=0.1, what="the revoked client "
                           "refused after the CRL changed on disk")
        self.assertIn("REVOKED", error.upper())
        proxy.wait_access(close="handshake_failed",
                          detail="revoked: certificate verify failed: certificate revoked")
        self.assertEqual(proxy.metric("mqtls_tls_reloads_total", result="ok"), 1)


if __name__ == "__main__":
    unittest.main()

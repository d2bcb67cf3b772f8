"""The metrics an operator alerts on, scraped from /metrics after known traffic through the
real binary and a real broker: each counter has exactly the value that traffic must give, the
certificate expiry gauge is the served certificate's notAfter, the access line carries every
field (SNI and reload generation included), no password reaches the log even at debug level,
and repeated warnings are rate limited and counted."""

import datetime
import json
import signal
import socket
import subprocess
import unittest
import urllib.request

from harness import CA_BUNDLE, IntegrationTest, cert, connect_packet, cpu_seconds, pub

DISCONNECT = b"\xe0\x00"
SECRET = "s3cr3t-Passw0rd"
ACCESS_FIELDS = {"event", "conn", "listener", "generation", "peer", "identity", "client_id",
                 "mqtt", "tls", "cipher", "sni", "resumed", "duration_ms", "bytes_in",
                 "bytes_out", "close", "detail"}


def not_after(pem):
    out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", pem],
                         capture_output=True, text=True, check=True).stdout.strip()
    stamp = datetime.datetime.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


class MetricsTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def start(self):
        config = self.proxy_config(self.broker.port)
        config["log"]["level"] = "debug"
        config["identity"] = {"username": "require_match"}
        # Within the open-file limit of any machine the suite runs on (about 2,150 descriptors),
        # so the gauge shows the configured value (DescriptorLimitTest covers a lower limit).
        config["limits"]["max_connections"] = 1000
        return self.start_proxy(config)

    def s_client(self, port, sess_out=None, sess_in=None):
        """One MQTT 3.1.1 session over TLS 1.2 through openssl s_client; returns whether the
        broker accepted it and whether the TLS session was resumed."""
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
                "-servername", "localhost", "-CAfile", CA_BUNDLE, "-cert", cert("client.pem"),
                "-key", cert("client.key"), "-ign_eof", "-nocommands"]
        args += ["-sess_out", sess_out] if sess_out else []
        args += ["-sess_in", sess_in] if sess_in else []
        result = subprocess.run(args, input=connect_packet(client_id="resumer") + DISCONNECT,
                                capture_output=True, timeout=60)
        return b"\x20\x02\x00\x00" in result.stdout, b"\nReused, TLSv" in result.stdout

    def test_counters_after_known_traffic(self):
        proxy = self.start()
        port = proxy.port
        ok = pub(port, "devices/device-001/m", "hello", args=["-i", "metrics-good"])
        self.assertEqual(ok.returncode, 0, ok.stderr)
        for identity in (None, "client-wrongca", "client-expired"):
            failed = pub(port, "devices/device-001/m", "no", identity=identity)
            self.assertNotEqual(failed.returncode, 0, identity)
        saved = str(self.workdir / "session.pem")
        self.assertEqual(self.s_client(port, sess_out=saved), (True, False))
        self.assertEqual(self.s_client(port, sess_in=saved), (True, True))
        refused = pub(port, "devices/device-001/m", "no",
                      args=["-i", "metrics-refused", "-u", "somebody-else", "-P", SECRET])
        self.assertNotEqual(refused.returncode, 0, refused.stderr)
        proxy.wait_metric("mqtls_connections_closed_total", 7)
        proxy.wait_access(client_id="metrics-refused")
        m = proxy.metrics()

        handshakes = {"ok": 3, "resumed": 1, "no_certificate": 1, "unknown_ca": 1,
                      "expired": 1, "not_yet_valid": 0, "revoked": 0, "bad_certificate": 0,
                      "crl_expired": 0, "protocol_version": 0, "no_shared_cipher": 0,
                      "timeout": 0, "other": 0}
        for result, count in handshakes.items():
            self.assertEqual(m.get_value("mqtls_tls_handshakes_total", listener="mqtts",
                                         result=result), count, result)
        exact = [
            ("mqtls_connections_accepted_total", {"listener": "mqtts"}, 7),
            ("mqtls_connections_open", {"listener": "mqtts"}, 0),
            ("mqtls_connections_active", {}, 0),
            ("mqtls_connections_rejected_total", {}, 0),
            ("mqtls_connections_closed_total", {}, 7),
            ("mqtls_connections_closed_total", {"reason": "handshake_failed"}, 3),
            ("mqtls_max_connections", {}, 1000),
            ("mqtls_tls_handshake_duration_seconds_count", {"listener": "mqtts"}, 4),
            ("mqtls_tls_negotiated_total", {}, 4),
            ("mqtls_tls_negotiated_total", {"version": "TLSv1.2"}, 2),
            ("mqtls_mqtt_connects_total", {}, 4),
            ("mqtls_mqtt_connects_total", {"version": "3.1.1", "result": "accepted"}, 3),
            ("mqtls_mqtt_connects_total",
             {"version": "3.1.1", "result": "bad_username_or_password"}, 1),
            ("mqtls_identity_refusals_total", {}, 1),
            ("mqtls_identity_refusals_total", {"rule": "username_mismatch"}, 1),
            ("mqtls_mqtt_connect_forwarded_total", {}, 3),
            ("mqtls_upstream_connect_duration_seconds_count", {}, 3),
            ("mqtls_upstream_connect_failures_total", {}, 0),
            ("mqtls_forwarded_packets_total", {}, 0),  # byte stream: not framed
            ("mqtls_log_lines_suppressed_total", {}, 0),
            ("mqtls_tls_reloads_total", {}, 0),
            ("mqtls_upstream_ready", {}, 0),
        ]
        for name, labels, value in exact:
            self.assertEqual(m.get_value(name, **labels), value, f"{name}{labels}")
        self.assertGreater(m.get_value("mqtls_forwarded_bytes_total",
                                       direction="client_to_broker"), 0)
        self.assertTrue([k for k in m if k[0] == "mqtls_build_info"
                         and dict(k[1]).get("version") and dict(k[1]).get("openssl")])
        self.assertEqual(m.get_value("mqtls_build_info"), 1)

        # Expiry gauges: the served certificate's notAfter, and the client CAs.
        self.assertEqual(m.get_value("mqtls_certificate_not_after_timestamp_seconds",
                                     listener="mqtts", role="server"),
                         not_after(cert("server-ec.pem")))
        self.assertGreater(m.get_value("mqtls_certificate_not_after_timestamp_seconds",
                                       listener="mqtts", role="client_ca"), 0)

        # The access line of a known connection carries every field.
        record = proxy.wait_access(client_id="metrics-good")
        self.assertEqual(set(record), ACCESS_FIELDS)
        self.assertEqual((record["sni"], record["generation"], record["listener"],
                          record["identity"], record["mqtt"], record["close"]),
                         ("localhost", "0", "mqtts", "device-001", "4", "client_closed"))
        self.assertTrue(record["tls"].startswith("TLSv1."))
        self.assertEqual(proxy.wait_access(client_id="resumer", resumed="false")["sni"],
                         "localhost")
        failures = [r for r in proxy.access_records() if r["close"] == "handshake_failed"]
        self.assertEqual(sorted(r["detail"].split(":")[0] for r in failures),
                         ["expired", "no_certificate", "unknown_ca"])

        # Warnings for each failure; the password never appears, even at debug level.
        proxy.wait_for_log(r"CONNECT refused \(refused_bad_credentials\)")
        self.assertEqual(len([line for line in proxy.log_lines()
                              if "TLS handshake from" in line and " warning " in line]), 3)
        self.assertNotIn(SECRET, proxy.log())
        level_url = proxy.metrics_url.replace("/metrics", "/log/level")
        with urllib.request.urlopen(level_url, timeout=10) as response:
            self.assertEqual(json.loads(response.read())["level"], "debug")

        # A reload bumps the generation new connections report.
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_metric("mqtls_tls_reloads_total", 1, result="ok")
        again = pub(port, "devices/device-001/m", "hello", args=["-i", "metrics-after"])
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(proxy.wait_access(client_id="metrics-after")["generation"], "1")
        self.assertEqual(proxy.metric("mqtls_certificate_not_after_timestamp_seconds",
                                      listener="mqtts", role="server"),
                         not_after(cert("server-ec.pem")))

    def test_repeated_failures_are_rate_limited_and_counted(self):
        proxy = self.start()
        for _ in range(13):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as plain:
                plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    while plain.recv(4096):
                        pass
                except OSError:
                    pass
        proxy.wait_metric("mqtls_tls_handshake_failures_total", 13, reason="not_tls")
        self.assertEqual(proxy.metric("mqtls_tls_handshakes_total", result="other"), 13)
        proxy.wait_metric("mqtls_log_lines_suppressed_total", 3)
        self.assertEqual(proxy.metric("mqtls_log_lines_suppressed_total"), 3)
        warned = [line for line in proxy.log_lines() if "TLS handshake from" in line]
        self.assertEqual(len(warned), 10, warned)
        # The access log is never limited: one line per connection.
        proxy.wait_metric("mqtls_connections_closed_total", 13)
        self.assertEqual(len([r for r in proxy.access_records()
                              if r["close"] == "handshake_failed"]), 13)

    def test_process_families_describe_the_process(self):
        proxy = self.start()
        with open(f"/proc/{proxy.pid}/limits") as limits:
            soft = next(int(line.split()[3]) for line in limits
                        if line.startswith("Max open files"))
        before = proxy.metrics()
        self.assertEqual(before.get_value("process_max_fds"), soft)
        self.assertGreater(before.get_value("process_resident_memory_bytes"), 1 << 20)
        self.assertGreaterEqual(before.get_value("process_virtual_memory_bytes"),
                                before.get_value("process_resident_memory_bytes"))
        started = before.get_value("process_start_time_seconds")
        self.assertLess(abs(started - datetime.datetime.now().timestamp()), 120)
        # The counter is the process's own CPU time, read at the scrape: between two readings
        # of /proc/PID/stat taken around it.
        low = cpu_seconds(proxy.pid)
        counted = proxy.metrics().get_value("process_cpu_seconds_total")
        self.assertLessEqual(low, counted)
        self.assertLessEqual(counted, cpu_seconds(proxy.pid))
        # Each connection holds two descriptors: the client's and the broker's.
        sessions = [self.raw_session(proxy.port, client_id=f"fd-{i}") for i in range(3)]
        now_open = proxy.metrics().get_value("process_open_fds")
        opened = now_open - before.get_value("process_open_fds")
        for session in sessions:
            session.close()
        self.assertGreaterEqual(opened, 6)
        self.assertLessEqual(opened, 8)  # and at most a broker check or a scrape more


if __name__ == "__main__":
    unittest.main()

"""The admin HTTP listener: health, readiness (broker up, down, back; draining), metrics, reload,
the connection list and closing connections, the log level, and refusing changes."""

import json
import shutil
import signal
import ssl
import socket
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import IntegrationTest, cert, parse_metrics, pub


def request(base: str, method: str, path: str, body: bytes | None = None):
    """(status, body text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(base + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class AdminTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def start_admin_proxy(self, **override):
        config = self.proxy_config(self.broker.port, **override)
        config.pop("metrics")
        port = harness.free_port()
        config = harness.merge(config, {"admin": {"listen": f"127.0.0.1:{port}"}})
        config["admin"].update(override.get("admin", {}))
        proxy = self.start_proxy(config)
        self.base = f"http://127.0.0.1:{port}"
        return proxy

    def get(self, path):
        return request(self.base, "GET", path)

    def wait_status(self, path, status, timeout=harness.WAIT):
        return harness.wait_until(lambda: (a := self.get(path))[0] == status and a, timeout,
                                  interval=0.1, what=f"{path} answering {status}")

    def test_health_readiness_and_metrics(self):
        self.start_admin_proxy()
        self.assertEqual(self.get("/healthz"), (200, "ok\n"))
        self.assertEqual(self.get("/readyz"), (200, "ready\n"))
        status, text = self.get("/metrics")
        self.assertEqual(status, 200)
        metrics = parse_metrics(text)
        self.assertEqual(metrics.get_value("mqtls_upstream_ready"), 1)
        self.assertIn(("mqtls_connections_active", ()), metrics)
        self.assertEqual(self.get("/nothing-here")[0], 404)

    def test_readyz_follows_the_broker(self):
        self.start_admin_proxy()
        self.assertEqual(self.get("/readyz")[0], 200)
        port = self.broker.port
        self.broker.stop()
        stopped = time.monotonic()
        _, reason = self.wait_status("/readyz", 503, timeout=10)
        self.assertLess(time.monotonic() - stopped, 8)
        self.assertIn(f"broker 127.0.0.1:{port} does not answer", reason)
        self.assertEqual(parse_metrics(self.get("/metrics")[1]).get_value("mqtls_upstream_ready"),
                         0)
        self.assertEqual(self.get("/healthz")[0], 200, "a broker down is not a sick process")

        self.broker = self.start_broker(port=port)
        self.wait_status("/readyz", 200, timeout=10)

    def test_readyz_says_draining_after_sigterm(self):
        proxy = self.start_admin_proxy(limits={"drain_timeout": "4s"})
        self.assertEqual(self.get("/readyz")[0], 200)
        held = self.raw_session(proxy.port, level=4, client_id="held", identity="client2")
        proxy.send_signal(signal.SIGTERM)
        proxy.wait_for_log(r"draining")
        self.assertEqual(self.get("/readyz"), (503, "draining\n"))
        self.assertEqual(self.get("/healthz")[0], 200)
        held.expect_closed(timeout=15)
        self.assertEqual(proxy.wait(timeout=15), 0)

    def test_reload_answers_the_result(self):
        key = self.workdir / "server.key"
        shutil.copy(cert("server-ec.key"), key)
        proxy = self.start_admin_proxy(
            listeners=[{"name": "mqtts", "bind": "127.0.0.1", "port": harness.free_port(),
                        "tls": {"cert": cert("server-ec.pem"), "key": str(key),
                                "client_ca": harness.CA_BUNDLE}}])
        status, text = request(self.base, "POST", "/reload")
        self.assertEqual(status, 200, text)
        answer = json.loads(text)
        self.assertTrue(answer["ok"])
        [listener] = answer["listeners"]
        self.assertEqual((listener["listener"], listener["ok"], listener["error"]),
                         ("mqtts", True, ""))
        self.assertIn(str(key), listener["files"])

        key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        status, text = request(self.base, "POST", "/reload")
        self.assertEqual(status, 500, text)
        answer = json.loads(text)
        self.assertFalse(answer["ok"])
        [listener] = answer["listeners"]
        self.assertFalse(listener["ok"])
        self.assertEqual(listener["outcome"], "failed")
        self.assertIn(str(key), listener["error"])
        self.assert_round_trip(proxy, self.broker, "after-failed-reload")  # old context kept

    def test_connections_are_listed_and_closed(self):
        proxy = self.start_admin_proxy()
        start = len(self.broker.log())
        sub = self.start_sub(proxy.port, "devices/#", identity="client2", client_id="listed",
                             count=0, wait_s=0)
        self.broker.wait_subscribed("listed", start=start)
        status, text = self.get("/connections")
        self.assertEqual(status, 200, text)
        answer = json.loads(text)
        [entry] = [c for c in answer["connections"] if c["client_id"] == "listed"]
        self.assertEqual(entry["identity"], "device-002")
        self.assertEqual(entry["listener"], "mqtts")
        self.assertEqual(entry["mqtt_level"], 4)
        self.assertTrue(entry["tls_version"].startswith("TLSv1."))
        self.assertTrue(entry["peer"].startswith("127.0.0.1:"))
        self.assertGreater(entry["bytes_from_client"], 0)
        self.assertGreaterEqual(entry["age_seconds"], 0)
        self.assertEqual(self.get("/connections?limit=0")[0], 400)

        status, text = request(self.base, "DELETE", f"/connections/{entry['id']}")
        self.assertEqual((status, json.loads(text)["closed"]), (200, 1), text)
        record = proxy.wait_access(conn=entry["id"], timeout=10)
        self.assertEqual((record["client_id"], record["close"]), ("listed", "admin"))
        self.assertNotIn(entry["id"], [c["id"] for c in
                                       json.loads(self.get("/connections")[1])["connections"]])
        self.assertEqual(request(self.base, "DELETE", f"/connections/{entry['id']}")[0], 404)
        sub.kill()  # mosquitto_sub dials again after a lost connection; a raw client does not

        # MQTT 3.1.1: a clean TLS close (close_notify), no bytes; MQTT 5: DISCONNECT 0x98
        # (administrative action) first. Both logged and counted with close reason "admin".
        held = self.raw_session(proxy.port, level=4, client_id="held", identity="client2")
        held5 = self.raw_session(proxy.port, level=5, client_id="held5", identity="client2")
        def admin_closes():
            return parse_metrics(self.get("/metrics")[1]).get_value(
                "mqtls_connections_closed_total", reason="admin")

        before = admin_closes()
        status, text = request(self.base, "DELETE", "/connections?identity=device-002")
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text)["closed"], 2, text)
        self.assertEqual(held.expect_closed(timeout=10), b"")
        self.assertIsNone(held.close_error)
        disconnect = held5.expect_closed(timeout=10)
        self.assertIsNone(held5.close_error)
        self.assertEqual((disconnect[0], disconnect[2]), (0xE0, 0x98), disconnect)
        for client_id in ("held", "held5"):
            self.assertEqual(proxy.wait_access(client_id=client_id, timeout=10)["close"], "admin")
        self.assertEqual(admin_closes(), before + 2)
        self.assertEqual(request(self.base, "DELETE", "/connections?identity=nobody")[0], 404)

    def test_log_level_changes_what_is_logged(self):
        proxy = self.start_admin_proxy()
        self.assertEqual(request(self.base, "PUT", "/log/level", b"warn"),
                         (200, '{"level":"warn"}\n'))
        result = pub(proxy.port, "devices/device-001/quiet", "x", args=["-i", "quiet-pub"])
        self.assertEqual(result.returncode, 0, result.stderr)
        # The quiet client's close is logged a moment after mosquitto_pub exits.
        harness.wait_until(lambda: parse_metrics(self.get("/metrics")[1])
                           .get_value("mqtls_connections_closed_total") >= 1,
                           what="the quiet client's close")
        self.assertEqual(request(self.base, "PUT", "/log/level", b'{"level": "info"}')[0], 200)
        result = pub(proxy.port, "devices/device-001/loud", "x", args=["-i", "loud-pub"])
        self.assertEqual(result.returncode, 0, result.stderr)
        proxy.wait_access(client_id="loud-pub")
        self.assertFalse([r for r in proxy.access_records() if r.get("client_id") == "quiet-pub"])
        self.assertEqual(request(self.base, "PUT", "/log/level", b"chatty")[0], 400)

        proxy.send_signal(signal.SIGUSR1)
        proxy.wait_for_log(r"log level now debug")
        self.assertEqual(self.get("/log/level"), (200, '{"level":"debug"}\n'))

    def test_changes_refused_when_mutations_are_off(self):
        self.start_admin_proxy(admin={"allow_mutations": False})
        self.assertEqual(request(self.base, "POST", "/reload")[0], 403)
        self.assertEqual(request(self.base, "DELETE", "/connections/1")[0], 403)
        self.assertEqual(request(self.base, "PUT", "/log/level", b"debug")[0], 403)
        self.assertEqual(self.get("/log/level"), (200, '{"level":"info"}\n'))
        self.assertEqual(self.get("/healthz")[0], 200)

    def test_a_busy_admin_port_stops_the_start(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            config = self.proxy_config(self.broker.port)
            config.pop("metrics")
            config["admin"] = {"listen": f"127.0.0.1:{port}"}
            proxy = self.start_proxy(config, wait_ready=False, expected_exit=1)
            self.assertEqual(proxy.wait(timeout=20), 1)
        self.assertIn(f"admin.listen '127.0.0.1:{port}': cannot listen", proxy.log())



class AdminTlsTest(IntegrationTest):
    """admin.tls: HTTPS only, the client certificate required when client_ca is given, the
    context reloaded with the listeners', and its problems placed by --check."""

    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def https_context(self, identity: str | None):
        context = ssl.create_default_context(cafile=harness.CA_BUNDLE)
        context.check_hostname = False
        if identity:
            context.load_cert_chain(cert(f"{identity}.pem"), cert(f"{identity}.key"))
        return context

    def https(self, method: str, path: str, identity: str | None = "client"):
        req = urllib.request.Request(self.base + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30,
                                        context=self.https_context(identity)) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def start_tls_admin(self, tls: dict):
        config = self.proxy_config(self.broker.port)
        config.pop("metrics")
        port = harness.free_port()
        config = harness.merge(config, {"admin": {"listen": f"127.0.0.1:{port}", "tls": tls}})
        proxy = self.start_proxy(config)
        self.port = port
        self.base = f"https://127.0.0.1:{port}"
        return proxy

    def test_https_with_a_required_client_certificate(self):
        key = self.workdir / "admin.key"
        shutil.copy(cert("server-ec.key"), key)
        proxy = self.start_tls_admin({"cert": cert("server-ec.pem"), "key": str(key),
                                      "client_ca": harness.CA_BUNDLE})
        self.assertEqual(self.https("GET", "/healthz"), (200, "ok\n"))
        with self.assertRaises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            self.https("GET", "/healthz", identity=None)
        with self.assertRaises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            self.https("GET", "/healthz", identity="client-wrongca")
        # Plain HTTP on the HTTPS port gets nothing useful.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as plain:
            plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = plain.recv(4096)
        self.assertNotIn(b"mqtls_", answer)
        self.assertFalse(answer.startswith(b"HTTP/1.1 200"), answer[:80])

        # The admin context is reloaded with the listeners': a broken key fails, named.
        status, text = self.https("POST", "/reload")
        self.assertEqual(status, 200, text)
        names = [item["listener"] for item in json.loads(text)["listeners"]]
        self.assertEqual(names, ["mqtts", "admin"])
        key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        status, text = self.https("POST", "/reload")
        self.assertEqual(status, 500, text)
        admin = json.loads(text)["listeners"][1]
        self.assertEqual((admin["listener"], admin["outcome"]), ("admin", "failed"))
        self.assertIn("admin.tls.key", admin["error"])
        self.assertEqual(self.https("GET", "/healthz"), (200, "ok\n"), "the old context stays")
        self.assert_round_trip(proxy, self.broker, "admin-tls")

    def test_https_without_client_certificates(self):
        self.start_tls_admin({"cert": cert("server-rsa.pem"), "key": cert("server-rsa.key")})
        self.assertEqual(self.https("GET", "/readyz", identity=None), (200, "ready\n"))

    def test_check_places_admin_tls_problems(self):
        config = self.proxy_config(self.broker.port)
        config = harness.merge(config, {"admin": {"listen": "127.0.0.1:0", "tls": {
            "cert": cert("server-ec.pem"), "key": cert("server-rsa.key"),
            "sni": [{"names": ["a.example"]}]}}})
        path = self.workdir / "bad-admin.yaml"
        path.write_text(harness.to_yaml(config))
        result = harness.run_mqtls("--check", "--config", str(path), expected_exit=2)
        self.assertIn("admin.tls.sni: 'sni' is not available on the admin listener",
                      result.stderr)
        self.assertRegex(result.stderr, rf"{path}:\d+:\d+: admin\.tls\.key: ")


if __name__ == "__main__":
    unittest.main()

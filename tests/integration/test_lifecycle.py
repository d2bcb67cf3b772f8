"""Process and connection lifecycle: draining on SIGTERM, connections closed by the broker, the
connection limit, the command line (--check, --version), a port already in use, optional client
certificates, JSON logs and the access line's byte counts, worker threads' names and scheduling,
and the harness's own check that a crashed or misbehaving mqtls fails the test that started
it."""

import concurrent.futures
import contextlib
import io
import json
import os
import platform
import re
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness
import mqtt5
from harness import (PUBLISH, IntegrationTest, connect_packet, decode_publish, pub, run_mqtls,
                     to_yaml)


class DrainTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def test_sigterm_drains_then_closes_at_the_deadline(self):
        config = self.proxy_config(self.broker.port, limits={"drain_timeout": "3s"})
        proxy = self.start_proxy(config)
        start = len(self.broker.log())
        subscriber = self.raw_session(proxy.port, level=4, client_id="drain-sub",
                                      identity="client2")
        subscriber.subscribe("devices/#")
        self.broker.wait_subscribed("drain-sub", start=start)

        signalled = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        proxy.wait_for_log(r"draining")

        # New connections are refused at once: the listening sockets are closed. Each worker
        # closes its own on its own loop, so a connection that reaches a worker's accept queue
        # in the instant before it closes is reset rather than refused: try again.
        def refused():
            try:
                socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
                return False
            except ConnectionResetError:
                return False
            except ConnectionRefusedError:
                return True

        harness.wait_until(refused, timeout=2, what="connections to be refused")
        self.assertLess(time.monotonic() - signalled, 2.5)

        # The open connection still works: a message published straight to the broker during
        # the drain reaches the subscriber through mqtls.
        direct = subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-u", "device-001",
             "-t", "devices/device-001/drain", "-m", "during drain", "-q", "1"],
            capture_output=True, timeout=60)
        self.assertEqual(direct.returncode, 0, direct.stderr)
        ptype, flags, body = subscriber.read_packet(timeout=2.5)
        self.assertEqual(ptype, PUBLISH)
        message = decode_publish(flags, body)
        self.assertEqual((message["topic"], message["payload"]),
                         ("devices/device-001/drain", b"during drain"))
        self.assertTrue(proxy.running(), "mqtls exited before the drain deadline")

        # At the deadline the subscriber is closed and mqtls exits 0.
        subscriber.expect_closed(timeout=10)
        closed_after = time.monotonic() - signalled
        self.assertGreaterEqual(closed_after, 2.5)
        self.assertLess(closed_after, 6)
        self.assertEqual(proxy.wait(timeout=10), 0)
        exited_after = time.monotonic() - signalled
        self.assertLess(exited_after, 7)
        record = proxy.wait_access(client_id="drain-sub")
        self.assertEqual(record["close"], "shutdown")
        self.assertIn("mqtls stopped", proxy.log())

    def test_sigterm_with_no_connections_exits_at_once(self):
        proxy = self.start_proxy(self.proxy_config(self.broker.port,
                                                   limits={"drain_timeout": "30s"}))
        self.assert_round_trip(proxy, self.broker, "before-stop")
        harness.wait_until(lambda: proxy.metric("mqtls_connections_active") == 0,
                           what="no active connections")
        started = time.monotonic()
        self.assertEqual(proxy.stop(signal.SIGTERM, timeout=20), 0)
        self.assertLess(time.monotonic() - started, 1.5)

    def test_sigint_drains_like_sigterm(self):
        proxy = self.start_proxy(self.proxy_config(self.broker.port, metrics={"listen": ""}))
        started = time.monotonic()
        self.assertEqual(proxy.stop(signal.SIGINT, timeout=20), 0)
        self.assertLess(time.monotonic() - started, 1.5)

    def test_second_signal_closes_at_once(self):
        config = self.proxy_config(self.broker.port, limits={"drain_timeout": "60s"})
        proxy = self.start_proxy(config)
        client = self.raw_session(proxy.port, client_id="stubborn")
        proxy.send_signal(signal.SIGTERM)
        proxy.wait_for_log(r"draining")
        client.ping()
        started = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        client.expect_closed(timeout=10)
        self.assertEqual(proxy.wait(timeout=10), 0)
        self.assertLess(time.monotonic() - started, 3)


class ConnectionTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def test_broker_closing_a_client_closes_its_connection(self):
        proxy = self.start_proxy(self.proxy_config(self.broker.port))
        first = self.raw_session(proxy.port, client_id="same-id")
        first.ping()
        start = len(self.broker.log())
        # A second client with the same client id takes the session over; the broker
        # disconnects the first, and mqtls must close the first client's TLS connection.
        second = self.raw_session(proxy.port, client_id="same-id", identity="client2")
        self.broker.wait_for_log(r"Client same-id already connected, closing old connection",
                                 start=start)
        first.expect_closed(timeout=10)
        record = proxy.wait_access(client_id="same-id", identity="device-001")
        self.assertEqual(record["close"], "broker_closed")
        second.ping()

    def test_broker_last_words_reach_the_client_before_the_close(self):
        payload = bytes(range(256)) * 1200  # 300 KiB, more than the default buffer limit
        publish = harness.packet(harness.PUBLISH, harness.mqtt_str("devices/last") + payload)

        def broker(sock, connect):
            # CONNACK, a large PUBLISH and the close, all at once.
            sock.sendall(b"\x20\x02\x00\x00" + publish)
            sock.shutdown(socket.SHUT_WR)

        fake = self.start_fake_broker(broker)
        proxy = self.start_proxy(self.proxy_config(fake.port))
        client = self.raw(proxy.port)
        client.send(connect_packet(level=4, client_id="last-words"))
        self.assertEqual(client.connack(4)["code"], 0)
        ptype, flags, body = client.read_packet(timeout=10)
        self.assertEqual(ptype, PUBLISH)
        message = decode_publish(flags, body)
        self.assertEqual(message["topic"], "devices/last")
        self.assertTrue(message["payload"] == payload, "payload differs")
        client.expect_closed(timeout=10)
        self.assertEqual(fake.errors, [])
        record = proxy.wait_access(client_id="last-words")
        self.assertEqual(record["close"], "broker_closed")
        self.assertEqual(int(record["bytes_out"]), 4 + len(publish))

    def test_close_is_a_clean_tls_close(self):
        proxy = self.start_proxy(self.proxy_config(self.broker.port))
        client = self.raw_session(proxy.port, client_id="clean-close")
        self.broker.stop()
        self.assertEqual(client.expect_closed(timeout=10), b"")
        self.assertIsNone(client.close_error,
                          "mqtls closed the TLS connection without a close_notify")
        refused = self.raw(proxy.port)
        refused.send(b"\xc0\x00")  # not a CONNECT: refused and closed by mqtls
        self.assertEqual(refused.expect_closed(timeout=10), b"")
        self.assertIsNone(refused.close_error,
                          "mqtls closed the TLS connection without a close_notify")

    def test_client_vanishing_still_delivers_what_it_sent(self):
        proxy = self.start_proxy(self.proxy_config(self.broker.port))
        start = len(self.broker.log())
        watcher = self.start_sub(proxy.port, "devices/device-001/vanish/#", client_id="watcher",
                                 count=2, args=["-v"])
        self.broker.wait_subscribed("watcher", start=start)
        will = {"topic": "devices/device-001/vanish/will", "payload": b"gone"}
        client = self.raw_session(proxy.port, client_id="vanisher", will=will)
        publish = harness.packet(harness.PUBLISH,
                                 harness.mqtt_str("devices/device-001/vanish/last") + b"words")
        # The last PUBLISH and the TCP close leave together; no DISCONNECT, so the will fires.
        client.send(publish)
        client.sock.close()
        self.assertEqual(watcher.wait(), (0, b"devices/device-001/vanish/last words\n"
                                             b"devices/device-001/vanish/will gone\n"))
        self.assertEqual(proxy.wait_access(client_id="vanisher")["close"], "client_closed")

    def test_max_connections(self):
        config = self.proxy_config(self.broker.port, limits={"max_connections": 2})
        proxy = self.start_proxy(config)
        one = self.raw_session(proxy.port, client_id="one")
        two = self.raw_session(proxy.port, client_id="two", identity="client2")
        # The third connection is closed at accept, before any TLS.
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            third = harness.RawClient(proxy.port)
            third.send(connect_packet(client_id="three"))
            third.connack()
        proxy.wait_metric("mqtls_connections_rejected_total", reason="max_connections")
        self.assertEqual(proxy.metric("mqtls_connections_accepted_total"), 2)
        self.assertEqual(proxy.metric("mqtls_connections_active"), 2)
        one.ping()
        two.ping()
        # A slot freed is a slot available again.
        one.close()
        harness.wait_until(lambda: proxy.metric("mqtls_connections_active") == 1,
                           what="the first connection to be released")
        three = self.raw_session(proxy.port, client_id="three")
        three.ping()
        two.ping()
        self.assertEqual(proxy.metric("mqtls_connections_rejected_total",
                                      reason="max_connections"), 1)


def open_file_limit(pid: int) -> tuple[int, int]:
    """The soft and hard RLIMIT_NOFILE of a running process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError(f"no open-file limit in /proc/{pid}/limits")


class DescriptorLimitTest(IntegrationTest):
    """Two descriptors per connection: mqtls raises its soft open-file limit for
    limits.max_connections, and where the hard limit is too low it admits only what fits,
    refusing the rest at accept, never failing accept itself (EMFILE) for everyone."""

    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        # The hard limit a test may set: prlimit cannot raise it above the runner's own.
        self.hard = min(8192, open_file_limit(os.getpid())[1])
        if self.hard < 2048:
            self.skipTest(f"the open-file hard limit here is {self.hard}, below 2048")

    def start_limited(self, soft: int, hard: int, max_connections: int, **override):
        config = self.proxy_config(self.broker.port, limits={"max_connections": max_connections},
                                   **override)
        return self.start_proxy(config, launcher=["prlimit", f"--nofile={soft}:{hard}"])

    def test_the_soft_limit_is_raised_for_max_connections(self):
        proxy = self.start_limited(64, self.hard, 500)
        raised = proxy.wait_for_log(r"open-file limit raised from 64 to (\d+) for "
                                    r"limits\.max_connections 500")
        soft, hard = open_file_limit(proxy.pid)
        self.assertEqual(soft, int(raised.group(1)))
        self.assertGreaterEqual(soft, 2 * 500)
        self.assertLess(soft, hard)  # what the configuration needs, not all the hard limit allows
        self.assertEqual(hard, self.hard)
        self.assertEqual(proxy.metric("mqtls_max_connections"), 500)
        self.raw_session(proxy.port, client_id="one").ping()

    # The sanitizers' own checks need free descriptors (UBSan's vptr check opens a pipe to test
    # that memory is readable, and reports an error when it cannot), which this test takes away.
    @unittest.skipIf(harness.SANITIZED, "sanitizer checks need descriptors this test withholds")
    def test_descriptors_running_out_cost_only_what_needs_them(self):
        # Descriptors can still run out (another part of the process, a limit lowered while
        # running): the client whose broker dial fails is told so, accept pauses instead of
        # spinning, and a client waiting in the backlog is served once descriptors are back.
        proxy = self.start_limited(4096, self.hard, 100)
        fds = f"/proc/{proxy.pid}/fd"

        def set_soft(soft: int):
            subprocess.run(["prlimit", f"--pid={proxy.pid}", f"--nofile={soft}:{self.hard}"],
                           check=True, timeout=10)

        held = len(os.listdir(fds))
        set_soft(held + 1)  # room to accept one client, none to dial its broker
        client = harness.RawClient(proxy.port)
        client.send(connect_packet(client_id="no-room"))
        self.assertEqual(client.connack()["code"], 3)  # server unavailable
        client.close()
        proxy.wait_for_log(r"broker unavailable: .*Too many open files")
        harness.wait_until(lambda: len(os.listdir(fds)) <= held, what="the client's socket closed")
        set_soft(held)  # no room to accept at all
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(self.raw_session, proxy.port, client_id="waited")
            proxy.wait_for_log(r"accept failed: Too many open files; pausing accepts")
            before = harness.cpu_seconds(proxy.pid)
            time.sleep(0.5)
            # Paused, not spinning on accept.
            self.assertLess(harness.cpu_seconds(proxy.pid) - before, 0.2)
            set_soft(4096)
            waiting.result(timeout=harness.WAIT).ping()  # accepted from the backlog, served
        self.assertGreaterEqual(
            proxy.metric("mqtls_connections_rejected_total", reason="accept_error"), 1)
        self.raw_session(proxy.port, client_id="after").ping()

    def test_the_reserve_covers_what_mqtls_holds_with_room(self):
        # Many workers, three listeners and the admin listener: the most descriptors mqtls holds
        # for itself, which must stay well inside what it keeps aside for them.
        listener = self.proxy_config(self.broker.port)["listeners"][0]
        listeners = [dict(listener, name=f"l{i}", port=harness.free_port()) for i in range(3)]
        proxy = self.start_limited(64, self.hard, 100, workers=8, listeners=listeners)
        raised = proxy.wait_for_log(r"open-file limit raised from 64 to (\d+) for "
                                    r"limits\.max_connections 100")
        reserve = int(raised.group(1)) - 2 * 100
        proxy.metrics()  # a scrape: one more descriptor while it is answered
        held = len(os.listdir(f"/proc/{proxy.pid}/fd"))
        self.assertLessEqual(held, reserve // 2, f"{held} descriptors held, {reserve} reserved")

    def test_a_low_hard_limit_admits_what_fits_and_refuses_the_rest_at_accept(self):
        proxy = self.start_limited(170, 170, 1000)
        warned = proxy.wait_for_log(
            r"open-file limit 170 \(hard 170\) leaves room for (\d+) connections, fewer than "
            r"limits\.max_connections 1000: .* raise the limit to at least (\d+)")
        room, needed = int(warned.group(1)), int(warned.group(2))
        self.assertTrue(1 <= room < 50, room)
        self.assertGreaterEqual(needed, 2 * 1000)
        self.assertEqual(proxy.metric("mqtls_max_connections"), room)
        sessions = [self.raw_session(proxy.port, client_id=f"fits-{i}") for i in range(room)]
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            extra = harness.RawClient(proxy.port)
            extra.send(connect_packet(client_id="extra"))
            extra.connack()
        proxy.wait_metric("mqtls_connections_rejected_total", reason="max_connections")
        for session in sessions:
            session.ping()  # every admitted connection still works end to end
        self.assertEqual(proxy.metric("mqtls_connections_rejected_total", reason="accept_error"),
                         0)
        sessions.pop().close()
        harness.wait_until(lambda: proxy.metric("mqtls_connections_active") == room - 1,
                           what="a connection to be released")
        self.raw_session(proxy.port, client_id="again").ping()
        for session in sessions:
            session.close()


class CommandLineTest(IntegrationTest):
    BAD_CONFIG = """\
workers: 0
log:
  level: loud
listeners:
  - name: a
    port: 70000
    tls:
      cert: /nonexistent/server.pem
      key: /nonexistent/server.key
      client_auth: sometimes
upstream:
  port: 0
limits:
  drain_timeout: soon
  max_conections: 5
"""

    def test_check_reports_every_error_with_its_position(self):
        path = self.workdir / "bad.yaml"
        path.write_text(self.BAD_CONFIG)
        result = run_mqtls("--check", "--config", str(path))
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertNotIn("configuration ok", result.stdout + result.stderr)
        errors = [line for line in result.stderr.splitlines()
                  if line.startswith(f"{path}:")]
        expected = [  # (line, key path) of every mistake in BAD_CONFIG
            (1, "workers"),
            (3, "log.level"),
            (6, "listeners[0].port"),
            (8, "listeners[0].tls.cert"),
            (9, "listeners[0].tls.key"),
            (10, "listeners[0].tls.client_auth"),
            (12, "upstream.port"),
            (14, "limits.drain_timeout"),
            (15, "limits.max_conections"),
        ]
        pattern = re.compile(rf"^{re.escape(str(path))}:(\d+):(\d+): (\S+): (.+); (.+)$")
        found = []
        for line in errors:
            match = pattern.match(line)
            self.assertIsNotNone(match, f"not 'file:line:col: key: problem; fix': {line}")
            self.assertGreater(int(match.group(2)), 0)
            found.append((int(match.group(1)), match.group(3)))
        self.assertEqual(sorted(found), expected, result.stderr)
        self.assertIn("did you mean 'max_connections'", result.stderr)

    def test_check_good_config(self):
        config = self.proxy_config(harness.free_port())
        path = self.workdir / "good.yaml"
        path.write_text(to_yaml(config))
        result = run_mqtls("--check", "--config", str(path))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration ok", result.stdout)
        # --check does not start anything.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", config["listeners"][0]["port"]), timeout=5)

    def test_bad_tls_files_are_configuration_errors(self):
        for cert_name, key_name, key_path, problem in [
                ("server-expired.pem", "server-expired.key", "listeners[0].tls.cert",
                 "has expired"),
                ("server-ec.pem", "server-mismatch.key", "listeners[0].tls.key",
                 "does not match")]:
            config = self.proxy_config(harness.free_port())
            config["listeners"][0]["tls"].update({"cert": harness.cert(cert_name),
                                                  "key": harness.cert(key_name)})
            path = self.workdir / f"{key_name}.yaml"
            path.write_text(to_yaml(config))
            for args in (["--check", "--config", str(path)], ["--config", str(path)]):
                result = run_mqtls(*args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertRegex(result.stderr,
                                 rf"{re.escape(str(path))}:\d+:\d+: {re.escape(key_path)}: "
                                 rf".*{problem}.*; ")
                self.assertNotIn("mqtls ready", result.stderr)

    def test_check_missing_file(self):
        result = run_mqtls("--check", "--config", str(self.workdir / "absent.yaml"))
        self.assertEqual(result.returncode, 2)
        self.assertIn("absent.yaml", result.stderr)

    def test_version(self):
        result = run_mqtls("--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^mqtls \d+\.\d+\.\d+")
        # The allocator the build chose (ctest passes it) must be the one that serves malloc.
        self.assertRegex(result.stdout, r", allocator (mimalloc|system)\)$")
        expected = os.environ.get("MQTLS_ALLOCATOR")
        if expected:
            self.assertIn(f"allocator {expected})", result.stdout)


class OptionalClientAuthTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.tap = self.start_tap(self.broker.port)

    def optional_proxy(self, identity=None):
        config = self.proxy_config(self.tap.port)
        config["listeners"][0]["tls"]["client_auth"] = "optional"
        if identity:
            config["identity"] = identity
        return self.start_proxy(config)

    def test_no_certificate_passes_the_connect_through_unchanged(self):
        proxy = self.optional_proxy()
        start = len(self.broker.log())
        result = pub(proxy.port, "devices/gateway-7/x", "anon", identity=None,
                     args=["-i", "anon-client", "-u", "gateway-7", "-P", "pw"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(dict(self.broker.connected_clients(start)),
                         {"anon-client": "gateway-7"})
        self.assertEqual(self.tap.wait_connect()["password"], b"pw")
        # Byte for byte: the raw client's CONNECT is what the broker receives.
        sent = connect_packet(level=5, client_id="raw-anon", username="someone",
                              password=b"x", properties=[(0x26, ("k", "v"))])
        client = self.raw(proxy.port, identity=None)
        client.send(sent)
        self.assertEqual(client.connack(5)["code"], 0)
        harness.wait_until(lambda: len(self.tap.connections) == 2
                           and self.tap.connections[1].connect(), what="second CONNECT")
        self.assertEqual(bytes(self.tap.connections[1].upstream[:len(sent)]), sent)
        # A client that does present a certificate still gets its identity injected.
        _, details = self.published(proxy)
        self.assertIn("u'device-001'", details)

    def published(self, proxy):
        start = len(self.broker.log())
        result = pub(proxy.port, "devices/device-001/x", "cert", args=["-i", "with-cert",
                                                                       "-u", "claimed"])
        self.assertEqual(result.returncode, 0, result.stderr)
        match = self.broker.wait_for_log(r"New client connected from \S+ as with-cert \(([^)]*)\)",
                                         start=start)
        return match.group(0), match.group(1)

    def test_anonymous_refuse(self):
        proxy = self.optional_proxy({"anonymous": "refuse"})
        start = len(self.broker.log())
        v311 = pub(proxy.port, "devices/x/y", "anon", identity=None, args=["-u", "gateway-7"])
        self.assertEqual(v311.returncode, 4, v311.stderr)
        v5 = pub(proxy.port, "devices/x/y", "anon", identity=None, version="mqttv5")
        self.assertEqual(v5.returncode, 0x86, v5.stderr)
        self.assertEqual(self.broker.tcp_connections(start), [])
        self.assertEqual(proxy.metric("mqtls_mqtt_connect_refused_total",
                                      reason="refused_bad_credentials"), 2)
        _, details = self.published(proxy)
        self.assertIn("u'device-001'", details)


class JsonLogTest(IntegrationTest):
    def test_every_line_is_json(self):
        broker = self.start_broker()
        config = self.proxy_config(broker.port, log={"format": "json"})
        proxy = self.start_proxy(config)
        result = pub(proxy.port, "devices/device-001/json", "x", args=["-i", "json-client"])
        self.assertEqual(result.returncode, 0, result.stderr)
        # A refused client too, so a line with a quoted detail is logged.
        self.assertNotEqual(pub(proxy.port, "devices/x/y", "x",
                                identity="client-expired").returncode, 0)
        proxy.wait_access(client_id="json-client")
        proxy.wait_access(close="handshake_failed")
        self.assertEqual(proxy.stop(), 0)
        lines = proxy.log_lines()
        self.assertGreaterEqual(len(lines), 5)
        objects = []
        for line in lines:
            try:
                objects.append(json.loads(line))
            except ValueError as error:
                self.fail(f"not a JSON object: {line!r} ({error})")
        for obj in objects:
            self.assertIsInstance(obj, dict)
            self.assertIn("time", obj)
            self.assertIn("level", obj)
        access = [o for o in objects if o.get("event") == "connection_closed"]
        self.assertEqual(len(access), 2, access)
        ok = next(o for o in access if o.get("client_id") == "json-client")
        self.assertEqual(ok["identity"], "device-001")
        self.assertEqual(ok["listener"], "mqtts")
        self.assertEqual(ok["mqtt"], 4)
        self.assertIn(ok["close"], ("client_closed", "broker_closed"))
        self.assertIsInstance(ok["duration_ms"], (int, float))
        self.assertIsInstance(ok["bytes_in"], int)
        self.assertIs(ok["resumed"], False)
        refused = next(o for o in access if o.get("close") == "handshake_failed")
        self.assertIn("certificate has expired", refused["detail"])
        self.assertTrue(any("mqtls ready" in o.get("msg", "") for o in objects))

    def test_hostile_client_id_cannot_break_log_lines(self):
        evil = 'evil"\n{"event":"forged"} \\ \t\u2028end'

        def accepting_broker(sock, connect):
            # Mosquitto refuses control characters in client ids; this broker takes anything.
            sock.sendall(b"\x20\x03\x00\x00\x00")
            sock.recv(1)

        fake = self.start_fake_broker(accepting_broker)
        for log_format in ("json", "text"):
            with self.subTest(log_format=log_format):
                config = self.proxy_config(fake.port, log={"format": log_format})
                proxy = self.start_proxy(config, name=f"mqtls-{log_format}")
                client = self.raw(proxy.port)
                client.send(connect_packet(level=5, client_id=evil))
                self.assertEqual(client.connack(5)["code"], 0)
                client.close()
                harness.wait_until(lambda: proxy.access_records(), what="the access line")
                self.assertEqual(proxy.stop(), 0)
                records = proxy.access_records()
                self.assertEqual(len(records), 1, records)
                self.assertEqual(records[0]["client_id"], evil)
                self.assertNotIn("forged", [r.get("event") for r in records])
                access_lines = [line for line in proxy.log_lines() if "connection_closed" in line]
                self.assertEqual(len(access_lines), 1, access_lines)
                if log_format == "json":
                    for line in proxy.log_lines():
                        self.assertIsInstance(json.loads(line), dict)


class PortInUseTest(IntegrationTest):
    def test_second_process_on_the_same_port_fails_at_start(self):
        broker = self.start_broker()
        first = self.start_proxy(self.proxy_config(broker.port))
        self.assertRegex(first.log(), r"mqtls ready: 2 worker\(s\)")  # workers share the port
        second_config = self.proxy_config(broker.port)
        second_config["listeners"][0]["port"] = first.port
        second = self.start_proxy(second_config, name="mqtls-second", wait_ready=False,
                                  expected_exit=1)
        harness.wait_until(lambda: not second.running() or "mqtls ready" in second.log(),
                           what="the second mqtls to exit")
        if second.running():
            second.expected_exit = 0  # stopped at teardown; this failure says what went wrong
            self.fail(f"a second mqtls started on port {first.port} already in use:\n"
                      f"{second.log()}")
        status = second.wait()
        self.assertGreater(status, 0, f"{harness.describe_status(status)}\n{second.log()}")
        second.expected_exit = status  # any failure status will do; a signal will not
        self.assertRegex(second.log(), r"(?i)address (already )?in use")
        self.assertNotIn("mqtls ready", second.log())
        # The first one still owns the port: every new connection lands on it, on any worker.
        self.assertTrue(first.running())
        for i in range(4):
            self.assert_round_trip(first, broker, f"after-second-{i}")
        self.assertGreaterEqual(first.metric("mqtls_connections_accepted_total"), 8)

    def test_port_held_by_another_program_fails_at_start(self):
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        config = self.proxy_config(harness.free_port())
        config["listeners"][0]["port"] = held.getsockname()[1]
        proxy = self.start_proxy(config, wait_ready=False, expected_exit=1)
        status = proxy.wait()
        self.assertGreater(status, 0, harness.describe_status(status))
        proxy.expected_exit = status
        self.assertRegex(proxy.log(), r"(?i)address (already )?in use")
        self.assertNotIn("mqtls ready", proxy.log())


class WorkerThreadTest(IntegrationTest):
    """Worker threads are named mqtls-wN and, by default, batch-scheduled (a worker woken by
    the broker's bytes does not preempt the broker on a shared core); the other threads keep the
    process's policy, and a kernel that refuses the policy costs one warning, nothing more."""

    def thread_policies(self, proxy, workers: int) -> list[tuple[str, int]]:
        """(thread name, scheduling policy) of each of proxy's threads, once all its workers
        are named (a worker is named after its policy is set)."""
        def read():
            threads = []
            for task in os.listdir(f"/proc/{proxy.pid}/task"):
                try:
                    with open(f"/proc/{proxy.pid}/task/{task}/comm") as comm:
                        threads.append((comm.read().strip(), os.sched_getscheduler(int(task))))
                except (FileNotFoundError, ProcessLookupError):
                    continue  # a thread that ended in between
            names = {name for name, _ in threads}
            return threads if all(f"mqtls-w{i}" in names for i in range(workers)) else None
        return harness.wait_until(read, what=f"{workers} named worker threads")

    def test_workers_are_batch_scheduled_by_default(self):
        inherited = os.sched_getscheduler(0)  # what mqtls starts with: this runner's policy
        if inherited == os.SCHED_BATCH:
            self.skipTest("this test runs batch-scheduled: nothing to tell apart")
        proxy = self.start_proxy(self.proxy_config(harness.free_port()))
        threads = self.thread_policies(proxy, 2)
        workers = [policy for name, policy in threads if name.startswith("mqtls-w")]
        others = [policy for name, policy in threads if not name.startswith("mqtls-w")]
        self.assertEqual(workers, [os.SCHED_BATCH] * 2, threads)
        self.assertTrue(others, threads)  # signals, reloads, the admin listener
        self.assertEqual(set(others), {inherited}, threads)

    def test_normal_scheduling_leaves_the_workers_alone(self):
        config = self.proxy_config(harness.free_port())
        config["worker_scheduling"] = "normal"
        proxy = self.start_proxy(config)
        threads = self.thread_policies(proxy, 2)
        self.assertEqual({policy for _, policy in threads}, {os.sched_getscheduler(0)}, threads)

    def test_a_refused_policy_costs_one_warning(self):
        """Under a seccomp filter that denies sched_setscheduler (a container profile, systemd's
        ~@resources): one warning for all workers, and the proxy serves as before."""
        broker = self.start_broker()
        launcher = [os.path.join(mqtt5.TOOLS_DIR, "deny_sched_setscheduler")]
        proxy = self.start_proxy(self.proxy_config(broker.port), launcher=launcher)
        threads = self.thread_policies(proxy, 2)
        if platform.machine() != "x86_64":
            self.skipTest("the filter denies x86_64 system call numbers only")
        self.assertNotIn(os.SCHED_BATCH, {policy for _, policy in threads}, threads)
        warnings = re.findall(r"cannot set the batch scheduling policy", proxy.log())
        self.assertEqual(len(warnings), 1, proxy.log())
        self.assertIn("worker_scheduling: normal", proxy.log())
        self.assert_round_trip(proxy, broker, "unbatched")


class AccessLogTest(IntegrationTest):
    def test_bytes_in_counts_what_the_client_sent(self):
        broker = self.start_broker()
        proxy = self.start_proxy(self.proxy_config(broker.port))
        client = self.raw(proxy.port)
        # The CONNECT claims "admin"; mqtls forwards it rewritten to "device-001" (5 bytes
        # longer). bytes_in is what the client sent, not what mqtls forwarded.
        sent = [connect_packet(level=4, client_id="counted", username="admin", password="pw"),
                harness.packet(harness.PUBLISH, harness.mqtt_str("devices/device-001/c")
                               + b"x" * 1000),
                harness.packet(harness.PINGREQ, b"")]
        for data in sent:
            client.send(data)
            if data[0] >> 4 == harness.CONNECT:
                self.assertEqual(client.connack(4)["code"], 0)
        self.assertEqual(client.read_packet()[0], harness.PINGRESP)
        disconnect = harness.packet(harness.DISCONNECT, b"")
        client.send(disconnect)
        client.expect_closed()
        record = proxy.wait_access(client_id="counted")
        self.assertEqual(record["identity"], "device-001")
        written = sum(len(data) for data in sent) + len(disconnect)
        self.assertEqual(int(record["bytes_in"]), written,
                         "bytes_in is not the number of bytes the client wrote")
        # bytes_out: the CONNACK and the PINGRESP, as the broker sent them.
        self.assertEqual(int(record["bytes_out"]), 4 + 2)


class HarnessTest(IntegrationTest):
    """The harness fails a test whose mqtls crashed or ended otherwise than the test expected,
    even when every assertion of the test passed and no sanitizer is in the build."""

    def run_inner(self, body) -> unittest.TestResult:
        class Inner(IntegrationTest):
            def test_inner(inner):
                body(inner)

        result = unittest.TestResult()
        with contextlib.redirect_stderr(io.StringIO()):  # the failed inner test's logs
            Inner("test_inner").run(result)
        return result

    def failure_text(self, result: unittest.TestResult) -> str:
        problems = result.failures + result.errors
        self.assertEqual(len(problems), 1, "the inner test did not fail")
        return problems[0][1]

    def test_crash_during_a_test_fails_it(self):
        def body(inner):
            proxy = inner.start_proxy(inner.proxy_config(harness.free_port()))
            proxy.send_signal(signal.SIGKILL)  # dies like a crash: no log line, no exit code
            proxy.wait()

        text = self.failure_text(self.run_inner(body))
        self.assertIn("killed by signal SIGKILL (9)", text)
        self.assertIn("expected exit status 0", text)
        self.assertIn("mqtls ready", text)  # the tail of its log

    def test_unexpected_exit_status_fails_the_test(self):
        def body(inner):
            config = to_yaml(inner.proxy_config(harness.free_port())).replace("workers: 2",
                                                                               "workers: 0")
            inner.start_proxy(config, wait_ready=False).wait()  # a configuration error: 2

        text = self.failure_text(self.run_inner(body))
        self.assertIn("exited during the test with exit status 2; expected exit status 0", text)
        self.assertIn("workers", text)  # the tail of its log names the mistake

    def test_process_expected_to_fail_but_still_running_fails_the_test(self):
        def body(inner):
            inner.start_proxy(inner.proxy_config(harness.free_port()), expected_exit=1)

        text = self.failure_text(self.run_inner(body))
        self.assertIn("still running at teardown; the test expected it to exit with exit "
                      "status 1", text)

    def test_run_mqtls_checks_the_status(self):
        with self.assertRaises(AssertionError) as raised:
            run_mqtls("--version", expected_exit=2)
        self.assertIn("exit status 0; expected exit status 2", str(raised.exception))
        self.assertEqual(run_mqtls("--version", expected_exit=0).returncode, 0)

    def test_expected_failure_passes(self):
        def body(inner):
            config = to_yaml(inner.proxy_config(harness.free_port())).replace("workers: 2",
                                                                               "workers: 0")
            inner.assertEqual(inner.start_proxy(config, wait_ready=False,
                                                expected_exit=2).wait(), 2)

        result = self.run_inner(body)
        self.assertEqual(result.failures + result.errors, [])
        self.assertEqual(result.testsRun, 1)


if __name__ == "__main__":
    unittest.main()

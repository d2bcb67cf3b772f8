"""The broker side: unreachable and slow brokers are answered with "server unavailable", and the
broker can be reached by host name or through a Unix socket."""

import select
import signal
import socket
import time
import unittest

from harness import IntegrationTest, connect_packet, free_port, pub, wait_until


def unresponsive_listener(test) -> int:
    """A loopback port that never answers a connect: a listening socket that never accepts,
    whose accept queue is full (listen(0), then connections parked in it until one hangs), so
    the kernel drops further SYNs and a new connect hangs rather than being refused. A probe
    confirms the hang lasts longer than the connect timeout under test. Returns the port;
    everything is closed at cleanup. Skips, saying what was seen, on a TCP stack that completes
    every connect."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    test.addCleanup(server.close)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    for parked in range(256):
        if _connect_hangs(test, port, 0.3):
            break
    else:
        test.skipTest("listen(0) on 127.0.0.1: 256 connects to a never-accepting socket all "
                      "completed, so this TCP stack cannot simulate a hung broker")
    if not _connect_hangs(test, port, 2.0):
        test.skipTest(f"a connect to a full accept queue (after {parked} parked) completed "
                      f"within 2 s: this TCP stack retries SYNs too soon to simulate a hung "
                      f"broker")
    return port


def _connect_hangs(test, port: int, seconds: float) -> bool:
    """Starts a non-blocking connect to port and tells whether it is still pending after
    seconds. The socket stays open (parked in the queue or pending) until cleanup."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    test.addCleanup(sock.close)
    sock.setblocking(False)
    sock.connect_ex(("127.0.0.1", port))
    _, writable, _ = select.select([], [sock], [], seconds)
    return not writable


class UpstreamTest(IntegrationTest):
    def test_broker_down_gives_server_unavailable(self):
        proxy = self.start_proxy(self.proxy_config(free_port()))  # nothing listens there
        v311 = pub(proxy.port, "devices/device-001/x", "lost")
        self.assertEqual(v311.returncode, 3, v311.stderr)  # 3.1.1: server unavailable
        self.assertIn(b"unavailable", v311.stderr)
        v5 = pub(proxy.port, "devices/device-001/x", "lost", version="mqttv5")
        self.assertEqual(v5.returncode, 0x88, v5.stderr)  # MQTT 5: 0x88
        client = self.raw(proxy.port)
        client.send(connect_packet(level=4, client_id="raw"))
        self.assertEqual(client.read_raw(4), b"\x20\x02\x00\x03")
        client.expect_closed()
        metrics = proxy.metrics()
        self.assertEqual(metrics.get_value("mqtls_mqtt_connect_refused_total",
                                           reason="broker_unavailable"), 3)
        self.assertEqual(metrics.get_value("mqtls_upstream_connect_failures_total"), 3)
        self.assertEqual(metrics.get_value("mqtls_mqtt_connect_forwarded_total"), 0)
        record = proxy.wait_access(close="broker_unavailable")
        self.assertEqual(record["identity"], "device-001")
        self.assertTrue(proxy.running())

    def test_broker_coming_back(self):
        port = free_port()
        proxy = self.start_proxy(self.proxy_config(port))
        self.assertEqual(pub(proxy.port, "devices/device-001/x", "lost").returncode, 3)
        broker = self.start_broker(port=port)
        self.assert_round_trip(proxy, broker, "back")

    def test_unix_socket_upstream(self):
        broker = self.start_broker(unix_socket=True)
        path = broker.unix_socket
        self.assertIn(f"Opening unix listen socket on path {path}", broker.log())
        # The TCP port in the config must not be what is used: point it at nothing.
        config = self.proxy_config(free_port(), upstream={"unix_socket": path})
        proxy = self.start_proxy(config)
        start = len(broker.log())
        self.assert_round_trip(proxy, broker, "unix")
        # Both clients came in over the Unix socket, not over the TCP listener.
        connections = broker.tcp_connections(start)
        self.assertEqual(len(connections), 2, connections)
        for line in connections:
            self.assertIn(f"New connection from {path}:0 on port 0.", line)
        self.assertEqual(proxy.metric("mqtls_upstream_connect_failures_total"), 0)

    def test_unix_socket_backlog_full_is_waited_out(self):
        """A connect to a Unix socket whose backlog is full fails at once (EAGAIN) instead of
        queueing as over TCP, and Mosquitto listens on its Unix socket with a backlog of 10: a
        burst of devices while the broker is slow to accept still gets through, each dial tried
        again until the broker accepts."""
        broker = self.start_broker(unix_socket=True)
        config = self.proxy_config(free_port(), upstream={"unix_socket": broker.unix_socket,
                                                          "connect_timeout": "15s"})
        proxy = self.start_proxy(config)
        clients = []
        broker.send_signal(signal.SIGSTOP)  # accepts nothing until SIGCONT
        try:
            for i in range(24):
                client = self.raw(proxy.port)
                client.send(connect_packet(level=4, client_id=f"burst-{i}"))
                clients.append(client)
            # The broker's backlog is full (what the test is about), some CONNECTs went into
            # the queued connections, and not all of them could.
            wait_until(lambda: self._unix_backlog_full(broker.unix_socket), what="a full backlog")
            forwarded = proxy.wait_metric("mqtls_mqtt_connect_forwarded_total", 1)
            self.assertLess(forwarded, 24)
            time.sleep(0.3)  # devices wait on, dialling again
        finally:
            broker.send_signal(signal.SIGCONT)
        for client in clients:
            self.assertEqual(client.read_raw(4), b"\x20\x02\x00\x00")  # CONNACK accepted
        self.assertEqual(proxy.metric("mqtls_upstream_connect_failures_total"), 0)
        wait_until(lambda: len(broker.connected_clients()) == 24, what="24 clients at the broker")

    def test_unix_socket_missing_fails_at_once(self):
        """No socket file (the broker is down): the device hears "server unavailable" at once,
        not after the connect timeout; only a full backlog is waited out."""
        path = str(self.workdir / "no-broker.sock")
        config = self.proxy_config(free_port(), upstream={"unix_socket": path,
                                                          "connect_timeout": "10s"})
        proxy = self.start_proxy(config)
        started = time.monotonic()
        result = pub(proxy.port, "devices/device-001/x", "lost", version="mqttv5")
        self.assertEqual(result.returncode, 0x88, result.stderr)
        self.assertLess(time.monotonic() - started, 5)
        record = proxy.wait_access(close="broker_unavailable")
        self.assertEqual(record["identity"], "device-001")
        self.assertIn("No such file or directory", proxy.log())

    def _unix_backlog_full(self, path: str) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect(path)
        except BlockingIOError:
            return True
        finally:
            probe.close()
        return False

    def test_upstream_host_name(self):
        broker = self.start_broker()
        config = self.proxy_config(broker.port, upstream={"host": "localhost"})
        proxy = self.start_proxy(config)
        self.assertIn(f"forwarding to localhost:{broker.port}", proxy.log())
        self.assert_round_trip(proxy, broker, "localhost")

    def test_upstream_host_name_that_does_not_resolve(self):
        config = self.proxy_config(free_port(), upstream={"host": "no-such-host.invalid",
                                                          "connect_timeout": "3s"})
        proxy = self.start_proxy(config)
        result = pub(proxy.port, "devices/device-001/x", "lost", version="mqttv5")
        self.assertEqual(result.returncode, 0x88, result.stderr)
        proxy.wait_access(close="broker_unavailable")

    def test_upstream_connect_timeout(self):
        port = unresponsive_listener(self)
        config = self.proxy_config(port, upstream={"connect_timeout": "1s"})
        proxy = self.start_proxy(config)
        client = self.raw(proxy.port)
        started = time.monotonic()
        client.send(connect_packet(level=5, client_id="patient"))
        ack = client.connack(5, timeout=15)
        elapsed = time.monotonic() - started
        self.assertEqual(ack["code"], 0x88)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 4)
        client.expect_closed()
        self.assertEqual(proxy.metric("mqtls_upstream_connect_failures_total",
                                      reason="timeout"), 1)
        record = proxy.wait_access(close="broker_unavailable")
        # The connection's deadline, or the stream's last attempt (which names what it tried).
        self.assertTrue(record["detail"].startswith("broker connect timed out"), record)
        # MQTT 3.1.1: CONNACK 0x03 server unavailable, after the same second.
        client = self.raw(proxy.port)
        started = time.monotonic()
        client.send(connect_packet(level=4, client_id="patient-311"))
        self.assertEqual(client.read_raw(4, timeout=15), b"\x20\x02\x00\x03")
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 4)
        client.expect_closed()
        # mosquitto_pub sees the same.
        started = time.monotonic()
        result = pub(proxy.port, "devices/device-001/x", "lost")
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertLess(time.monotonic() - started, 5)


if __name__ == "__main__":
    unittest.main()

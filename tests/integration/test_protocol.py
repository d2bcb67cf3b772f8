"""Bad input on the first packet, with a raw TLS client: not a CONNECT (refused at its first
byte), malformed, unsupported version, too large, a broken Remaining Length, and clients that
never send anything. Each is refused the way MQTT prescribes, counted, and hurts no other
client."""

import socket
import time
import unittest

from harness import (CONNACK, IntegrationTest, connect_packet, decode_connack, mqtt_str,
                     varint)

USER_PROPERTY = 0x26
LIMITS = {"max_connect_size": 1024, "connect_timeout": "1s", "handshake_timeout": "1s"}


class ProtocolTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.proxy = self.start_proxy(self.proxy_config(self.broker.port, limits=LIMITS))

    def assert_still_serving(self):
        """Whatever the test sent, mqtls is still running and serves a normal client."""
        self.assertTrue(self.proxy.running(), "mqtls exited")
        self.assert_round_trip(self.proxy, self.broker, self._testMethodName[5:])

    def refused_count(self, reason):
        return self.proxy.metric("mqtls_mqtt_connect_refused_total", reason=reason)

    def send_and_expect_close(self, data: bytes) -> bytes:
        """Sends data as the first bytes after the handshake; returns what came back before
        mqtls closed the connection."""
        client = self.raw(self.proxy.port)
        client.send(data)
        return client.expect_closed()

    def test_first_packet_not_connect(self):
        start = len(self.broker.log())
        self.assertEqual(self.send_and_expect_close(b"\xc0\x00"), b"")  # PINGREQ
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total",
                               reason="first_packet_not_connect")
        self.proxy.wait_access(close="first_packet_not_connect")
        self.assertEqual(self.broker.tcp_connections(start), [])
        self.assert_still_serving()

    def test_publish_before_connect(self):
        publish = b"\x30" + varint(9) + mqtt_str("a/b") + b"data"
        self.assertEqual(self.send_and_expect_close(publish), b"")
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total",
                               reason="first_packet_not_connect")
        self.assert_still_serving()

    def test_malformed_connect_v311_closed_silently(self):
        data = connect_packet(level=4, client_id="bad", reserved_flag=True)
        self.assertEqual(self.send_and_expect_close(data), b"")
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total", reason="malformed_connect")
        self.assert_still_serving()

    def test_malformed_connect_v5_gets_connack_0x81(self):
        data = connect_packet(level=5, client_id="bad", reserved_flag=True)
        reply = self.send_and_expect_close(data)
        self.assertGreaterEqual(len(reply), 5, reply)
        self.assertEqual(reply[0], CONNACK << 4)
        self.assertEqual(reply[1], len(reply) - 2)  # exactly one packet, then the close
        self.assertEqual(decode_connack(reply[2:], 5)["code"], 0x81)
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total", reason="malformed_connect")
        self.assert_still_serving()

    def test_unsupported_protocol_level(self):
        start = len(self.broker.log())
        data = connect_packet(level=6, client_id="future")
        self.assertEqual(self.send_and_expect_close(data), b"\x20\x02\x00\x01")
        self.proxy.wait_access(close="malformed_connect")
        self.assertEqual(self.broker.tcp_connections(start), [])
        self.assert_still_serving()

    def test_connect_larger_than_limit_v5_refused_before_body(self):
        # Only the beginning of a 4000-byte CONNECT is sent: the answer must not wait for it.
        header = b"\x10" + varint(4000) + mqtt_str("MQTT") + bytes([5, 0x02, 0, 60])
        client = self.raw(self.proxy.port)
        client.send(header)
        ptype, _, body = client.read_packet(timeout=10)
        self.assertEqual(ptype, CONNACK)
        self.assertEqual(decode_connack(body, 5)["code"], 0x95)
        client.expect_closed()
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total", reason="connect_too_large")
        self.assert_still_serving()

    def test_connect_larger_than_limit_v311_closed(self):
        header = b"\x10" + varint(4000) + mqtt_str("MQTT") + bytes([4, 0x02, 0, 60])
        self.assertEqual(self.send_and_expect_close(header), b"")
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total", reason="connect_too_large")

    def connect_of_size(self, total: int) -> bytes:
        """A v5 CONNECT of exactly total bytes, padded with a user property."""
        base = connect_packet(level=5, client_id="sized",
                              properties=[(USER_PROPERTY, ("pad", ""))])
        pad = total - len(base)
        data = connect_packet(level=5, client_id="sized",
                              properties=[(USER_PROPERTY, ("pad", "p" * pad))])
        # Growing the padding can grow the length fields themselves; trim to fit.
        while len(data) > total:
            pad -= len(data) - total
            data = connect_packet(level=5, client_id="sized",
                                  properties=[(USER_PROPERTY, ("pad", "p" * pad))])
        self.assertEqual(len(data), total)
        return data
        self.assert_still_serving()

    def test_connect_size_limit_is_inclusive(self):
        client = self.raw(self.proxy.port)
        client.send(self.connect_of_size(1024))
        self.assertEqual(client.connack(5)["code"], 0)
        client.close()
        client = self.raw(self.proxy.port)
        client.send(self.connect_of_size(1025))
        self.assertEqual(client.connack(5)["code"], 0x95)
        client.expect_closed()
        self.assertEqual(self.refused_count("connect_too_large"), 1)
        self.assert_still_serving()

    def test_five_byte_remaining_length(self):
        self.assertEqual(self.send_and_expect_close(b"\x10\xff\xff\xff\xff\x7f"), b"")
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total", reason="malformed")
        self.proxy.wait_access(close="malformed")
        self.assert_still_serving()

    def test_connect_deadline(self):
        client = self.raw(self.proxy.port)
        started = time.monotonic()
        self.assertEqual(client.expect_closed(timeout=15), b"")
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.7)
        self.assertLess(elapsed, 6)
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total", reason="connect_timeout")
        self.proxy.wait_access(close="connect_timeout")
        self.assert_still_serving()

    def test_connect_deadline_with_partial_connect(self):
        client = self.raw(self.proxy.port)
        client.send(connect_packet(level=4, client_id="slow")[:8])
        started = time.monotonic()
        self.assertEqual(client.expect_closed(timeout=15), b"")
        self.assertLess(time.monotonic() - started, 6)
        self.proxy.wait_metric("mqtls_mqtt_connect_refused_total", reason="connect_timeout")
        self.assert_still_serving()

    def test_handshake_deadline(self):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=15) as sock:
            self.assertEqual(sock.recv(100), b"")
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.7)
        self.assertLess(elapsed, 6)
        self.proxy.wait_metric("mqtls_tls_handshake_failures_total", reason="timeout")
        self.proxy.wait_access(close="handshake_timeout")
        self.assert_still_serving()

    def test_plain_mqtt_client(self):
        start = len(self.broker.log())
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=15) as sock:
            sock.sendall(connect_packet(level=4, client_id="plaintext"))
            data = b""
            try:
                while chunk := sock.recv(4096):
                    data += chunk
            except ConnectionResetError:
                pass
        self.assertNotIn(b"\x20\x02", data)  # no CONNACK, only (at most) a TLS alert
        self.proxy.wait_metric("mqtls_connections_closed_total", reason="handshake_failed")
        failures = {dict(labels)["reason"]: value
                    for (name, labels), value in self.proxy.metrics().items()
                    if name == "mqtls_tls_handshake_failures_total" and value}
        self.assertEqual(failures, {"not_tls": 1})
        self.assertEqual(self.broker.tcp_connections(start), [])
        self.assert_still_serving()


class FirstByteTest(IntegrationTest):
    """A first packet that cannot be a CONNECT is refused at its first byte, not when the
    CONNECT deadline (here 15 s) passes: an HTTP request, or the single byte that starts one."""

    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        limits = {"connect_timeout": "15s", "handshake_timeout": "15s"}
        self.proxy = self.start_proxy(self.proxy_config(self.broker.port, limits=limits))

    def assert_refused_at_once(self, data: bytes) -> None:
        start = len(self.broker.log())
        client = self.raw(self.proxy.port)
        client.send(data)
        started = time.monotonic()
        self.assertEqual(client.expect_closed(timeout=1.0), b"")
        self.assertLess(time.monotonic() - started, 1.0)
        self.proxy.wait_access(close="first_packet_not_connect")
        self.assertEqual(self.broker.tcp_connections(start), [])

    def test_http_request(self):
        self.assert_refused_at_once(b"GET / HTTP/1.0\r\n\r\n")

    def test_single_byte(self):
        self.assert_refused_at_once(b"G")


if __name__ == "__main__":
    unittest.main()

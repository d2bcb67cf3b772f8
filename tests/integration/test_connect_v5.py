"""MQTT 5 clients get a CONNACK with a reason code wherever the protocol allows one, even when
what mqtls needs to know arrives late: an oversized CONNECT whose protocol level comes after a
pause, reserved fixed-header flags, and an Assigned Client Identifier that must fit the client's
Maximum Packet Size. MQTT 3.1.1 clients in the same situations are closed without a CONNACK."""

import time
import unittest

from harness import (ASSIGNED_CLIENT_ID, CONNACK, IntegrationTest, connect_packet,
                     decode_connack, encode_properties, mqtt_str, packet, varint)

LIMITS = {"max_connect_size": 1024, "connect_timeout": "5s"}
MAXIMUM_PACKET_SIZE, TOPIC_ALIAS_MAXIMUM, REASON_STRING = 0x27, 0x22, 0x1F
USER_PROPERTY = 0x26


class ConnectV5Test(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def start(self, upstream_port=None, **override):
        config = self.proxy_config(upstream_port or self.broker.port, limits=LIMITS, **override)
        return self.start_proxy(config)

    def only_connack(self, reply: bytes, level: int) -> dict:
        """The decoded CONNACK when reply is exactly one CONNACK packet."""
        self.assertGreaterEqual(len(reply), 4, reply)
        self.assertEqual(reply[0], CONNACK << 4, reply)
        self.assertEqual(reply[1], len(reply) - 2, f"not exactly one packet: {reply!r}")
        return decode_connack(reply[2:], level)

    def test_oversized_connect_with_late_protocol_level(self):
        proxy = self.start()
        for level, expected in ((5, 0x95), (4, None)):
            with self.subTest(level=level):
                start = len(self.broker.log())
                client = self.raw(proxy.port)
                # The fixed header announces 4000 bytes (over the 1024 limit); the protocol name
                # and level, which say how to refuse, come only after a pause.
                client.send(b"\x10" + varint(4000))
                time.sleep(0.3)
                client.send(mqtt_str("MQTT") + bytes([level, 0x02, 0, 60]))
                reply = client.expect_closed(timeout=10)
                if expected is None:
                    self.assertEqual(reply, b"")
                else:
                    self.assertEqual(self.only_connack(reply, level)["code"], expected)
                self.assertEqual(self.broker.tcp_connections(start), [])
        self.assertEqual(proxy.metric("mqtls_mqtt_connect_refused_total",
                                      reason="connect_too_large"), 2)

    def test_reserved_fixed_header_flags(self):
        proxy = self.start()
        for level, expected in ((5, 0x81), (4, None)):
            with self.subTest(level=level):
                start = len(self.broker.log())
                data = bytearray(connect_packet(level=level, client_id="flags"))
                data[0] = 0x11  # CONNECT with a reserved flag bit set
                client = self.raw(proxy.port)
                client.send(bytes(data))
                reply = client.expect_closed(timeout=10)
                if expected is None:
                    self.assertEqual(reply, b"")
                else:
                    self.assertEqual(self.only_connack(reply, level)["code"], expected)
                self.assertEqual(self.broker.tcp_connections(start), [])
        # The same CONNECT with a correct first byte is accepted.
        client = self.raw(proxy.port)
        client.send(connect_packet(level=5, client_id="flags"))
        self.assertEqual(client.connack(5)["code"], 0)

    def assigned_id_connack(self, proxy, max_packet_size: int) -> tuple[dict, int]:
        """An MQTT 5 CONNECT with an empty client id and this Maximum Packet Size; returns the
        decoded CONNACK and its size in bytes."""
        client = self.raw(proxy.port)
        client.send(connect_packet(level=5, client_id="",
                                   properties=[(MAXIMUM_PACKET_SIZE, max_packet_size)]))
        ptype, _, body = client.read_packet(timeout=10)
        self.assertEqual(ptype, CONNACK)
        return decode_connack(body, 5), 1 + len(varint(len(body))) + len(body)

    def test_assigned_client_identifier_exactly_at_maximum_packet_size(self):
        proxy = self.start(identity={"client_id": "replace"})
        # Mosquitto 2.0's CONNACK (Topic Alias Maximum, Receive Maximum: 11 bytes) plus
        # "device-001" as Assigned Client Identifier is exactly 24 bytes: a limit it meets
        # exactly must not cost the client its identifier or any property.
        ack, size = self.assigned_id_connack(proxy, 24)
        self.assertEqual(ack["code"], 0)
        self.assertEqual(size, 24)
        self.assertEqual(sorted(ack["properties"]), [(ASSIGNED_CLIENT_ID, "device-001"),
                                                     (0x21, 20), (TOPIC_ALIAS_MAXIMUM, 10)])

    def test_assigned_client_identifier_fits_maximum_packet_size(self):
        # A broker whose CONNACK carries a Reason String and a User Property: with the Assigned
        # Client Identifier added it no longer fits the client's limit, so those two (which
        # MQTT 5 lets a server leave out) must go, while Topic Alias Maximum stays.
        props = [(TOPIC_ALIAS_MAXIMUM, 10), (REASON_STRING, "welcome to this broker"),
                 (USER_PROPERTY, ("broker-note", "something long enough"))]
        connack = packet(CONNACK, b"\x00\x00" + encode_properties(props))

        def broker(sock, connect):
            sock.sendall(connack)
            sock.recv(1)  # hold the connection until the client is done

        fake = self.start_fake_broker(broker)
        proxy = self.start(fake.port, identity={"client_id": "replace"})
        limit = 21  # fixed header 2 + flags/code 2 + length 1 + alias 3 + identifier 13
        ack, size = self.assigned_id_connack(proxy, limit)
        self.assertEqual(ack["code"], 0)
        self.assertLessEqual(size, limit, ack)
        self.assertIn((ASSIGNED_CLIENT_ID, "device-001"), ack["properties"])
        self.assertIn((TOPIC_ALIAS_MAXIMUM, 10), ack["properties"])
        # With room to spare nothing is dropped.
        ack, size = self.assigned_id_connack(proxy, 1 << 20)
        self.assertEqual(sorted(ack["properties"]),
                         sorted(props + [(ASSIGNED_CLIENT_ID, "device-001")]))


if __name__ == "__main__":
    unittest.main()

"""MQTT 5 identity user properties cannot be forged: whatever a client puts in its CONNECT (or
its will) under the configured names is removed, and the broker receives exactly the values from
the certificate, while every other property is kept."""

import subprocess
import unittest

from harness import (USER_PROPERTY, IntegrationTest, cert, cert_sha256, connect_packet,
                     tls_args, user_properties)

IDENTITY = {"user_properties": {"cn": "x-cert-cn", "fingerprint_sha256": "x-cert-fingerprint"}}
SESSION_EXPIRY, RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE = 0x11, 0x21, 0x27
WILL_DELAY, PAYLOAD_FORMAT, CONTENT_TYPE = 0x18, 0x01, 0x03


class ForgeryTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.tap = self.start_tap(self.broker.port)
        self.proxy = self.start_proxy(self.proxy_config(self.tap.port, identity=IDENTITY))
        self.fingerprint = cert_sha256(cert("client.pem"))

    def assert_identity_properties(self, props):
        names = [name for name, _ in user_properties(props)]
        self.assertEqual(names.count("x-cert-cn"), 1, props)
        self.assertEqual(names.count("x-cert-fingerprint"), 1, props)
        values = dict(user_properties(props))
        self.assertEqual(values["x-cert-cn"], "device-001")
        self.assertEqual(values["x-cert-fingerprint"], self.fingerprint)

    def test_mosquitto_pub_forged_user_property(self):
        result = subprocess.run(
            ["mosquitto_pub", *tls_args(self.proxy.port), "-V", "mqttv5", "-i", "forger",
             "-t", "devices/device-001/x", "-m", "hi",
             "-D", "CONNECT", "user-property", "x-cert-cn", "forged-admin",
             "-D", "CONNECT", "user-property", "x-cert-fingerprint", "00" * 32,
             "-D", "CONNECT", "user-property", "site", "plant-4"],
            capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        connect = self.tap.wait_connect()
        self.assertEqual(connect["level"], 5)
        self.assertEqual(connect["client_id"], "forger")
        self.assert_identity_properties(connect["properties"])
        self.assertIn(("site", "plant-4"), user_properties(connect["properties"]))
        upstream = bytes(self.tap.connections[-1].upstream)
        self.assertNotIn(b"forged-admin", upstream)
        self.assertNotIn(b"00" * 32, upstream)
        self.broker.wait_for_log(r"New client connected from \S+ as forger .*u'device-001'")

    def test_raw_connect_with_duplicates_and_forged_will(self):
        properties = [
            (SESSION_EXPIRY, 30),
            (USER_PROPERTY, ("x-cert-cn", "forged-admin")),
            (USER_PROPERTY, ("other", "1")),
            (RECEIVE_MAXIMUM, 10),
            (USER_PROPERTY, ("x-cert-cn", "forged-again")),
            (USER_PROPERTY, ("x-cert-fingerprint", "forged-fingerprint")),
            (USER_PROPERTY, ("other", "2")),
            (MAXIMUM_PACKET_SIZE, 1 << 20),
        ]
        will = {
            "topic": "devices/device-001/status",
            "payload": b"offline",
            "qos": 1,
            "properties": [
                (WILL_DELAY, 5),
                (USER_PROPERTY, ("x-cert-cn", "forged-will")),
                (PAYLOAD_FORMAT, 1),
                (USER_PROPERTY, ("will-note", "kept")),
                (USER_PROPERTY, ("x-cert-fingerprint", "forged-will-fingerprint")),
                (CONTENT_TYPE, "text/plain"),
            ],
        }
        client = self.raw(self.proxy.port)
        client.send(connect_packet(level=5, client_id="raw-forger", username="admin",
                                   password=b"pw", keepalive=42, properties=properties,
                                   will=will))
        self.assertEqual(client.connack(5)["code"], 0)
        connect = self.tap.wait_connect()
        upstream = bytes(self.tap.connections[-1].upstream[:connect["size"]])
        self.assertNotIn(b"forged", upstream)

        # CONNECT properties: identity exactly once, everything else kept in order.
        self.assert_identity_properties(connect["properties"])
        others = [(pid, v) for pid, v in connect["properties"]
                  if not (pid == USER_PROPERTY and v[0].startswith("x-cert-"))]
        self.assertEqual(others, [
            (SESSION_EXPIRY, 30),
            (USER_PROPERTY, ("other", "1")),
            (RECEIVE_MAXIMUM, 10),
            (USER_PROPERTY, ("other", "2")),
            (MAXIMUM_PACKET_SIZE, 1 << 20),
        ])
        # Will: forged names removed (any identity value there must be the real one), the rest
        # of the will untouched.
        forwarded_will = connect["will"]
        self.assertIsNotNone(forwarded_will)
        for name, value in user_properties(forwarded_will["properties"]):
            if name == "x-cert-cn":
                self.assertEqual(value, "device-001")
            if name == "x-cert-fingerprint":
                self.assertEqual(value, self.fingerprint)
        will_others = [(pid, v) for pid, v in forwarded_will["properties"]
                       if not (pid == USER_PROPERTY and v[0].startswith("x-cert-"))]
        self.assertEqual(will_others, [
            (WILL_DELAY, 5),
            (PAYLOAD_FORMAT, 1),
            (USER_PROPERTY, ("will-note", "kept")),
            (CONTENT_TYPE, "text/plain"),
        ])
        self.assertEqual(forwarded_will["topic"], "devices/device-001/status")
        self.assertEqual(forwarded_will["payload"], b"offline")
        # The rest of the CONNECT: same flags (will QoS 1, clean start, username, password),
        # keep alive and client id; username from the certificate.
        self.assertEqual(connect["protocol_name"], "MQTT")
        self.assertEqual(connect["flags"], 0x80 | 0x40 | 0x08 | 0x04 | 0x02)
        self.assertEqual(connect["keepalive"], 42)
        self.assertEqual(connect["client_id"], "raw-forger")
        self.assertEqual(connect["username"], "device-001")
        self.assertEqual(connect["password"], b"pw")

    def test_second_identity_uses_its_own_certificate(self):
        client = self.raw(self.proxy.port, identity="client2")
        client.send(connect_packet(level=5, client_id="d2", properties=[
            (USER_PROPERTY, ("x-cert-cn", "device-001"))]))
        self.assertEqual(client.connack(5)["code"], 0)
        connect = self.tap.wait_connect()
        self.assertEqual(user_properties(connect["properties"]), [
            ("x-cert-cn", "device-002"),
            ("x-cert-fingerprint", cert_sha256(cert("client2.pem"))),
        ])

    def test_mqtt_311_connect_carries_no_properties(self):
        client = self.raw(self.proxy.port)
        client.send(connect_packet(level=4, client_id="old", username="x-cert-cn"))
        self.assertEqual(client.connack(4)["code"], 0)
        connect = self.tap.wait_connect()
        self.assertEqual(connect["level"], 4)
        self.assertEqual(connect["properties"], [])
        self.assertEqual(connect["username"], "device-001")
        self.assertEqual(bytes(self.tap.connections[-1].upstream[:connect["size"]]),
                         connect_packet(level=4, client_id="old", username="device-001"))


if __name__ == "__main__":
    unittest.main()

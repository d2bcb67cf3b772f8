"""The certificate identity reaches the broker: username from the certificate (whatever the
client claimed), the broker's per-username ACL enforced on it, the username source list, the
client id policies, password stripping, and the MQTT 5 Assigned Client Identifier."""

import time
import unittest

from harness import (CONNACK, PUBLISH, SUBACK, IntegrationTest, connect_packet, decode_connack,
                     decode_publish, encode_properties, mqtt_str, packet, pub, subscribe_packet)

ASSIGNED_CLIENT_ID = 0x12


class IdentityTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()

    def proxy_with(self, identity=None, tap=False):
        """mqtls with the given identity section, optionally through a Tap to the broker."""
        upstream = self.broker.port
        self.tap = None
        if tap:
            self.tap = self.start_tap(self.broker.port)
            upstream = self.tap.port
        config = self.proxy_config(upstream)
        if identity is not None:
            config["identity"] = identity
        return self.start_proxy(config)

    def published_as(self, proxy, client_id, version="mqttv311", identity="client", args=()):
        """Publishes once with client_id; returns the username the broker logged for it."""
        start = len(self.broker.log())
        result = pub(proxy.port, "devices/device-001/id", "x", identity=identity,
                     version=version, args=["-i", client_id, *args])
        self.assertEqual(result.returncode, 0, result.stderr)
        match = self.broker.wait_for_log(
            rf"New client connected from \S+ as (\S+) \(([^)]*)\)", start=start)
        return match.group(1), match.group(2)

    def assert_connack(self, proxy, level, client_id, expected_code, identity="client"):
        """A raw CONNECT from identity gets a CONNACK with expected_code, then the close."""
        client = self.raw(proxy.port, identity=identity)
        client.send(connect_packet(level=level, client_id=client_id))
        ptype, _, body = client.read_packet()
        self.assertEqual(ptype, CONNACK)
        ack = decode_connack(body, level)
        self.assertEqual(ack["code"], expected_code)
        self.assertFalse(ack["session_present"])
        client.expect_closed()
        return body

    # Username ---------------------------------------------------------------------------------

    def test_username_is_the_certificate_cn_whatever_the_client_claims(self):
        proxy = self.proxy_with()
        start = len(self.broker.log())
        sub = self.start_sub(proxy.port, "devices/device-001/#", identity="client2",
                             client_id="watcher", count=2, args=["-v"])
        self.broker.wait_subscribed("watcher", start=start)
        for version in ("mqttv311", "mqttv5"):
            start = len(self.broker.log())
            result = pub(proxy.port, f"devices/device-001/{version}", "as device-001",
                         version=version,
                         args=["-u", "admin", "-P", "secret", "-i", f"claimer-{version}",
                               "-q", "1"])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(dict(self.broker.connected_clients(start)),
                             {f"claimer-{version}": "device-001"})
        # The ACL allows writing only under devices/<username>/: both messages got through, so
        # the broker applied the ACL to device-001, not to "admin".
        self.assertEqual(sub.wait(), (0, b"devices/device-001/mqttv311 as device-001\n"
                                         b"devices/device-001/mqttv5 as device-001\n"))
        self.assertNotIn("u'admin'", self.broker.log())

    def test_device_cannot_publish_into_another_devices_topic(self):
        proxy = self.proxy_with()
        start = len(self.broker.log())
        sub = self.start_sub(proxy.port, "devices/#", identity="client2", client_id="watcher",
                             args=["-v"])
        self.broker.wait_subscribed("watcher", start=start)
        denied = pub(proxy.port, "devices/device-002/x", "forged", args=["-i", "pub1", "-q", "1"])
        self.assertEqual(denied.returncode, 0, denied.stderr)  # QoS 1 acknowledged, not routed
        self.broker.wait_for_log(r"Denied PUBLISH from pub1 .*'devices/device-002/x'", start=start)
        allowed = pub(proxy.port, "devices/device-001/x", "own", args=["-i", "pub2", "-q", "1"])
        self.assertEqual(allowed.returncode, 0, allowed.stderr)
        # The first (and only) message the subscriber gets is the allowed one.
        self.assertEqual(sub.wait(), (0, b"devices/device-001/x own\n"))

    def test_username_from_spiffe_id(self):
        proxy = self.proxy_with({"username_from": ["spiffe_id"]})
        client_id, details = self.published_as(proxy, "spiffe-user", args=["-u", "admin"])
        self.assertEqual(client_id, "spiffe-user")
        self.assertIn("u'spiffe://mqtls.test/device/device-001'", details)

    def test_username_if_empty_keeps_a_client_username(self):
        proxy = self.proxy_with({"username": "if_empty"})
        _, details = self.published_as(proxy, "with-user", args=["-u", "gateway-7"])
        self.assertIn("u'gateway-7'", details)
        _, details = self.published_as(proxy, "without-user")
        self.assertIn("u'device-001'", details)

    def test_certificate_without_cn_is_refused_with_bad_credentials(self):
        proxy = self.proxy_with()
        start = len(self.broker.log())
        v311 = pub(proxy.port, "devices/x/y", "no", identity="client-nocn")
        self.assertEqual(v311.returncode, 4, v311.stderr)  # 3.1.1 return code 4
        self.assertIn(b"bad user name or password", v311.stderr)
        v5 = pub(proxy.port, "devices/x/y", "no", identity="client-nocn", version="mqttv5")
        self.assertEqual(v5.returncode, 0x86, v5.stderr)  # MQTT 5 reason 0x86
        body = self.assert_connack(proxy, 4, "nocn", 0x04, identity="client-nocn")
        self.assertEqual(body, b"\x00\x04")
        self.assert_connack(proxy, 5, "nocn", 0x86, identity="client-nocn")
        self.assertEqual(proxy.metric("mqtls_mqtt_connect_refused_total",
                                      reason="refused_bad_credentials"), 4)
        self.assertEqual(self.broker.tcp_connections(start), [])
        record = proxy.wait_access(close="refused_bad_credentials")
        self.assertEqual(record["detail"],
                         "certificate has none of the identity.username_from fields")

    def test_certificate_without_cn_is_accepted_with_spiffe_fallback(self):
        proxy = self.proxy_with({"username_from": ["cn", "spiffe_id"]})
        _, details = self.published_as(proxy, "nocn-device", identity="client-nocn")
        self.assertIn("u'spiffe://mqtls.test/device/device-nocn'", details)
        # A certificate with a CN still uses the CN, the first source present.
        _, details = self.published_as(proxy, "cn-device")
        self.assertIn("u'device-001'", details)

    # Client id --------------------------------------------------------------------------------

    def test_client_id_require_match(self):
        proxy = self.proxy_with({"client_id": "require_match"})
        start = len(self.broker.log())
        v311 = pub(proxy.port, "devices/device-001/x", "no", args=["-i", "sensor"])
        self.assertEqual(v311.returncode, 2, v311.stderr)  # identifier rejected
        v5 = pub(proxy.port, "devices/device-001/x", "no", version="mqttv5",
                 args=["-i", "sensor"])
        self.assertEqual(v5.returncode, 0x85, v5.stderr)
        self.assert_connack(proxy, 4, "sensor", 0x02)
        self.assert_connack(proxy, 5, "device-002", 0x85)
        self.assertEqual(self.broker.tcp_connections(start), [])
        self.assertEqual(proxy.metric("mqtls_mqtt_connect_refused_total",
                                      reason="refused_identifier_rejected"), 4)
        client_id, details = self.published_as(proxy, "device-001")
        self.assertEqual(client_id, "device-001")
        self.assertIn("u'device-001'", details)

    def test_client_id_prefix(self):
        proxy = self.proxy_with({"client_id": "prefix"})
        client_id, details = self.published_as(proxy, "sensor")
        self.assertEqual(client_id, "device-001:sensor")
        self.assertIn("u'device-001'", details)
        proxy.wait_access(client_id="device-001:sensor")

    def test_client_id_prefix_custom_separator(self):
        proxy = self.proxy_with({"client_id": "prefix", "client_id_separator": "/"})
        client_id, _ = self.published_as(proxy, "sensor", version="mqttv5")
        self.assertEqual(client_id, "device-001/sensor")

    def test_client_id_replace_v311(self):
        proxy = self.proxy_with({"client_id": "replace"}, tap=True)
        client = self.raw(proxy.port)
        client.send(connect_packet(level=4, client_id="chosen-by-client"))
        self.assertEqual(client.connack(4)["code"], 0)
        self.assertEqual(self.tap.wait_connect()["client_id"], "device-001")
        self.broker.wait_for_log(r"New client connected from \S+ as device-001 ")

    def test_v5_empty_client_id_replace_gets_assigned_client_identifier(self):
        proxy = self.proxy_with({"client_id": "replace"}, tap=True)
        client = self.raw(proxy.port)
        client.send(connect_packet(level=5, client_id=""))
        ack = client.connack(5)
        self.assertEqual(ack["code"], 0)
        assigned = [v for pid, v in ack["properties"] if pid == ASSIGNED_CLIENT_ID]
        self.assertEqual(assigned, ["device-001"])
        forwarded = self.tap.wait_connect()
        self.assertEqual(forwarded["client_id"], "device-001")
        self.assertEqual(forwarded["username"], "device-001")
        # The session works after the rewritten CONNACK: a PINGREQ gets its PINGRESP.
        client.send(b"\xc0\x00")
        self.assertEqual(client.read_packet()[0], 13)

    def test_v5_assigned_client_identifier_with_pipelined_subscribe(self):
        # CONNECT and SUBSCRIBE in one write: the broker's CONNACK (rewritten by mqtls) and its
        # SUBACK may arrive together; both must reach the client.
        proxy = self.proxy_with({"client_id": "replace"})
        client = self.raw(proxy.port)
        client.send(connect_packet(level=5, client_id="")
                    + subscribe_packet(7, "devices/device-001/#", level=5))
        ack = client.connack(5)
        self.assertEqual(ack["code"], 0)
        self.assertIn((ASSIGNED_CLIENT_ID, "device-001"), ack["properties"])
        ptype, _, body = client.read_packet(timeout=10)
        self.assertEqual(ptype, SUBACK)
        self.assertEqual(body[:2], b"\x00\x07")
        client.ping()

    def test_v5_assigned_client_identifier_with_a_fragmented_connack(self):
        connack_props = encode_properties([(0x22, 10), (0x21, 20)])  # topic alias/receive max
        connack = packet(CONNACK, b"\x00\x00" + connack_props)
        publish = packet(PUBLISH, mqtt_str("devices/device-001/hello") + b"\x00" + b"hi", 0)

        def broker(sock, connect):
            # The CONNACK trickles in one byte per segment; its last byte comes with a PUBLISH.
            for byte in connack[:-1]:
                sock.sendall(bytes([byte]))
                time.sleep(0.01)
            sock.sendall(connack[-1:] + publish)
            sock.recv(1)  # hold the connection until the client is done

        fake = self.start_fake_broker(broker)
        config = self.proxy_config(fake.port, identity={"client_id": "replace"})
        proxy = self.start_proxy(config)
        client = self.raw(proxy.port)
        client.send(connect_packet(level=5, client_id=""))
        ack = client.connack(5)
        self.assertEqual(ack["code"], 0)
        self.assertEqual(sorted(ack["properties"]),
                         [(ASSIGNED_CLIENT_ID, "device-001"), (0x21, 20), (0x22, 10)])
        ptype, flags, body = client.read_packet(timeout=10)
        self.assertEqual(ptype, PUBLISH)
        self.assertEqual(decode_publish(flags, body, 5)["payload"], b"hi")

    def check_v31_client_id_too_long(self, proxy, client_id, rewritten):
        """mosquitto_pub -V mqttv31 with client_id, which the policy turns into rewritten
        (over MQTT 3.1's 23 bytes): CONNACK 0x02, nothing reaches the broker, the log says why."""
        self.assertGreater(len(rewritten), 23)
        start = len(self.broker.log())
        result = pub(proxy.port, "devices/device-001/x", "no", version="mqttv31",
                     args=["-i", client_id])
        self.assertEqual(result.returncode, 2, result.stderr)  # identifier rejected
        self.assertEqual(self.broker.tcp_connections(start), [])
        record = proxy.wait_access(close="refused_identifier_rejected")
        self.assertIn("23", record["detail"])
        self.assertIn("3.1", record["detail"])

    def test_v31_prefixed_client_id_over_23_bytes_is_refused(self):
        proxy = self.proxy_with({"client_id": "prefix"})
        self.check_v31_client_id_too_long(proxy, "sensor-012345", "device-001:sensor-012345")
        # 23 bytes exactly still pass, under MQTT 3.1 as rewritten.
        client_id, details = self.published_as(proxy, "sensor-01234", version="mqttv31")
        self.assertEqual(client_id, "device-001:sensor-01234")
        self.assertIn("u'device-001'", details)
        # MQTT 3.1.1 has no such limit.
        client_id, _ = self.published_as(proxy, "sensor-012345")
        self.assertEqual(client_id, "device-001:sensor-012345")

    def test_v31_replaced_client_id_over_23_bytes_is_refused(self):
        spiffe = "spiffe://mqtls.test/device/device-001"
        proxy = self.proxy_with({"username_from": ["spiffe_id"], "client_id": "replace"})
        self.check_v31_client_id_too_long(proxy, "short", spiffe)
        client_id, _ = self.published_as(proxy, "short", version="mqttv5")
        self.assertEqual(client_id, spiffe)

    # Username require_match -------------------------------------------------------------------

    def test_username_require_match(self):
        proxy = self.proxy_with({"username": "require_match"}, tap=True)
        start = len(self.broker.log())
        v311 = pub(proxy.port, "devices/device-001/x", "no", args=["-u", "admin", "-i", "u4"])
        self.assertEqual(v311.returncode, 4, v311.stderr)  # bad user name or password
        v5 = pub(proxy.port, "devices/device-001/x", "no", version="mqttv5",
                 args=["-u", "device-002", "-i", "u5"])
        self.assertEqual(v5.returncode, 0x86, v5.stderr)
        self.assertEqual(self.broker.tcp_connections(start), [])
        self.assertEqual(proxy.metric("mqtls_mqtt_connect_refused_total",
                                      reason="refused_bad_credentials"), 2)
        # Its own CN, or no username at all, passes; the broker sees the CN either way.
        for version in ("mqttv311", "mqttv5"):
            _, details = self.published_as(proxy, f"own-{version}", version=version,
                                           args=["-u", "device-001"])
            self.assertIn("u'device-001'", details)
            _, details = self.published_as(proxy, f"none-{version}", version=version)
            self.assertIn("u'device-001'", details)
        self.assertEqual(self.tap.wait_connect()["username"], "device-001")

    # Password ---------------------------------------------------------------------------------

    def test_password_strip(self):
        proxy = self.proxy_with({"password": "strip"}, tap=True)
        client = self.raw(proxy.port)
        client.send(connect_packet(level=4, client_id="pw", username="admin",
                                   password=b"secret"))
        self.assertEqual(client.connack(4)["code"], 0)
        forwarded = self.tap.wait_connect()
        self.assertEqual(forwarded["flags"] & 0x40, 0, "password flag still set")
        self.assertIsNone(forwarded["password"])
        self.assertEqual(forwarded["flags"] & 0x80, 0x80)
        self.assertEqual(forwarded["username"], "device-001")
        self.assertEqual(forwarded["client_id"], "pw")
        self.assertNotIn(b"secret", bytes(self.tap.connections[-1].upstream))

    def test_password_keep_is_the_default(self):
        proxy = self.proxy_with(tap=True)
        client = self.raw(proxy.port)
        client.send(connect_packet(level=5, client_id="pw", username="admin",
                                   password=b"secret"))
        self.assertEqual(client.connack(5)["code"], 0)
        forwarded = self.tap.wait_connect()
        self.assertEqual(forwarded["flags"] & 0xC0, 0xC0)
        self.assertEqual(forwarded["password"], b"secret")
        self.assertEqual(forwarded["username"], "device-001")


if __name__ == "__main__":
    unittest.main()

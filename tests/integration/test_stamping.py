"""Per-PUBLISH identity: with identity.publish_properties, every MQTT 5 PUBLISH a client sends
reaches subscribers carrying the sender's certificate fields as user properties, exactly once,
whatever the client put there itself; with only identity.user_properties, client-sent PUBLISH
properties of those names are removed. QoS 0, 1 and 2, a thousand messages from one connection
and packets split across TLS records. MQTT 3.1.1 PUBLISH packets pass byte for byte."""

import subprocess
import unittest

import mqtt5
from harness import (PUBACK, PUBLISH, USER_PROPERTY, IntegrationTest, connect_packet,
                     encode_properties, mqtt_str, packet, tls_args)

TOPIC = "devices/device-001/stamp"
STAMP = {"publish_properties": {"cn": "x-cert-cn"}}
FORGED = ["-D", "publish", "user-property", "x-cert-cn", "admin",
          "-D", "publish", "user-property", "site", "plant-4"]


class StampingTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        # No limit on the messages queued for a subscriber, so a burst is never thinned out.
        self.broker = self.start_broker(extra_conf="max_queued_messages 0\n")

    def start(self, identity, tap=False):
        upstream = self.broker.port
        self.tap = None
        if tap:
            self.tap = self.start_tap(self.broker.port)
            upstream = self.tap.port
        return self.start_proxy(self.proxy_config(upstream, identity=identity))

    def subscriber(self, proxy, count, client_id="stamp-sub"):
        """An MQTT 5 mosquitto_sub (device-002) at QoS 1 printing user properties, subscribed.
        (QoS 1, not 2: mosquitto_sub 2.0.11 at MQTT 5 QoS 2 fails with "protocol error" after
        some twenty messages in a burst even straight from Mosquitto. The publisher's QoS is
        what these tests vary: it decides the packets that mqtls rewrites.)"""
        start = len(self.broker.log())
        sub = self.start_sub(proxy.port, TOPIC, identity="client2", version="mqttv5",
                             client_id=client_id, count=count, wait_s=60,
                             args=["-q", "1", "-F", mqtt5.PROPS_FORMAT])
        self.broker.wait_subscribed(client_id, start=start)
        return sub

    def received(self, sub, count):
        """[(user properties, payload)] of the count messages sub printed."""
        code, out = sub.wait(timeout=120)
        self.assertEqual(code, 0, sub.stderr)
        lines = out.decode().rstrip("\n").split("\n")
        self.assertEqual(len(lines), count, out[-500:])
        return [mqtt5.parse_props_line(line) for line in lines]

    def publish_lines(self, proxy, count, qos, version="mqttv5", extra=FORGED):
        """mosquitto_pub -l: count messages m0..m<count-1> over one connection."""
        argv = ["mosquitto_pub", *tls_args(proxy.port), "-V", version, "-i", f"pub-q{qos}",
                "-t", TOPIC, "-q", str(qos), "-l", *extra]
        body = "".join(f"m{i}\n" for i in range(count))
        result = subprocess.run(argv, input=body.encode(), capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)

    def assert_stamped(self, messages, count):
        self.assertEqual([payload for _, payload in messages], [f"m{i}" for i in range(count)])
        for props, payload in messages:
            self.assertEqual([v for k, v in props if k == "x-cert-cn"], ["device-001"],
                             f"{payload}: {props}")
            self.assertEqual([v for k, v in props if k == "site"], ["plant-4"], payload)

    def test_every_publish_carries_the_senders_cn(self):
        proxy = self.start(STAMP)
        for qos, count in ((0, 200), (1, 1000), (2, 200)):
            with self.subTest(qos=qos):
                sub = self.subscriber(proxy, count, client_id=f"stamp-sub-q{qos}")
                self.publish_lines(proxy, count, qos)
                self.assert_stamped(self.received(sub, count), count)

    def test_publish_without_properties_gets_stamped(self):
        proxy = self.start(STAMP)
        sub = self.subscriber(proxy, 1)
        self.publish_lines(proxy, 1, 1, extra=[])
        [(props, payload)] = self.received(sub, 1)
        self.assertEqual((props, payload), ([("x-cert-cn", "device-001")], "m0"))

    def test_forged_publish_property_removed_under_user_properties(self):
        proxy = self.start({"user_properties": {"cn": "x-cert-cn"}})
        count = 300
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                sub = self.subscriber(proxy, count, client_id=f"strip-sub-q{qos}")
                self.publish_lines(proxy, count, qos)
                for props, payload in self.received(sub, count):
                    self.assertEqual(props, [("site", "plant-4")], payload)

    def test_publishes_split_across_tls_records(self):
        # 300 QoS 1 PUBLISH packets, each with a forged property, sent as one byte stream cut
        # into 37-byte TLS records, so packet boundaries fall anywhere in mqtls's reads.
        proxy = self.start(STAMP)
        count = 300
        sub = self.subscriber(proxy, count)
        client = self.raw(proxy.port)
        client.send(connect_packet(level=5, client_id="splitter"))
        self.assertEqual(client.connack(5)["code"], 0)
        stream = b"".join(
            packet(PUBLISH, mqtt_str(TOPIC) + (i + 1).to_bytes(2, "big")
                   + encode_properties([(USER_PROPERTY, ("x-cert-cn", "admin")),
                                        (USER_PROPERTY, ("site", "plant-4"))])
                   + f"m{i}".encode(), flags=0x02)
            for i in range(count))
        for at in range(0, len(stream), 37):
            client.send(stream[at:at + 37])
        acked = set()
        while len(acked) < count:
            ptype, _, body = client.read_packet(timeout=30)
            self.assertEqual(ptype, PUBACK)
            acked.add(int.from_bytes(body[:2], "big"))
        self.assert_stamped(self.received(sub, count), count)

    def test_mqtt_311_publish_passes_byte_for_byte(self):
        proxy = self.start(STAMP, tap=True)
        client = self.raw(proxy.port)
        client.send(connect_packet(level=4, client_id="old-pub"))
        self.assertEqual(client.connack(4)["code"], 0)
        sent = b"".join(
            packet(PUBLISH, mqtt_str(TOPIC) + (i + 1).to_bytes(2, "big")
                   + f"x-cert-cn {i}".encode(), flags=0x02)
            for i in range(50))
        client.send(sent)
        for _ in range(50):
            self.assertEqual(client.read_packet()[0], PUBACK)
        connect_size = self.tap.wait_connect()["size"]
        self.assertEqual(bytes(self.tap.connections[-1].upstream[connect_size:]), sent)


if __name__ == "__main__":
    unittest.main()

"""Messages flow through mqtls: publish/subscribe in every MQTT version, a large payload, an RSA
server certificate and an IPv6 listener."""

import ctypes
import errno
import os
import socket
import ssl
import unittest

import harness
from harness import IntegrationTest, cert, pub

# Why ::1 cannot carry a TCP connection here (the skip reason), or None when it can.
IPV6_PROBLEM = harness.ipv6_loopback_problem()

SYS_PIDFD_GETFD = 438  # x86-64 and arm64 alike


def tcp_socket_inodes(local_port: int | None = None, remote_port: int | None = None) -> set[int]:
    """Inodes of established IPv4 TCP sockets on these ports, from /proc/net/tcp."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            if state != "01" or inode == 0:
                continue
            if local_port is not None and int(local.split(":")[1], 16) != local_port:
                continue
            if remote_port is not None and int(remote.split(":")[1], 16) != remote_port:
                continue
            inodes.add(inode)
    return inodes


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds."""
    inodes = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def socket_of(pid: int, inode: int) -> socket.socket:
    """A duplicate of process `pid`'s descriptor for the socket `inode` (pidfd_getfd)."""
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") != f"socket:[{inode}]":
                continue
        except OSError:
            continue
        pidfd = os.pidfd_open(pid)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
            return socket.socket(fileno=fd)
        finally:
            os.close(pidfd)
    raise AssertionError(f"process {pid} holds no socket {inode}")


class PublishTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.proxy = self.start_proxy(self.proxy_config(self.broker.port))

    def round_trip(self, version: str, tag: str) -> None:
        topic = f"devices/device-001/{tag}"
        start = len(self.broker.log())
        sub = self.start_sub(self.proxy.port, topic, identity="client2", version=version,
                             client_id=f"sub-{tag}", args=["-v"])
        self.broker.wait_subscribed(f"sub-{tag}", start=start)
        result = pub(self.proxy.port, topic, f"hello {tag}", identity="client", version=version,
                     args=["-i", f"pub-{tag}", "-q", "1"])
        self.assertEqual(result.returncode, 0, result.stderr)
        code, out = sub.wait()
        self.assertEqual(code, 0, sub.stderr)
        self.assertEqual(out, f"{topic} hello {tag}\n".encode())
        # Both clients reached the broker under their certificate's identity.
        clients = dict(self.broker.connected_clients(start))
        self.assertEqual(clients.get(f"sub-{tag}"), "device-002")
        self.assertEqual(clients.get(f"pub-{tag}"), "device-001")

    def test_mqtt_v311(self):
        self.round_trip("mqttv311", "v311")
        record = self.proxy.wait_access(client_id="pub-v311")
        self.assertEqual(record["identity"], "device-001")
        self.assertEqual(record["mqtt"], "4")
        # After a DISCONNECT either side may close first.
        self.assertIn(record["close"], ("client_closed", "broker_closed"))

    def test_mqtt_v5(self):
        self.round_trip("mqttv5", "v5")
        self.assertEqual(self.proxy.wait_access(client_id="pub-v5")["mqtt"], "5")

    def test_mqtt_v31(self):
        self.round_trip("mqttv31", "v31")
        self.assertEqual(self.proxy.wait_access(client_id="pub-v31")["mqtt"], "3")

    def test_one_mebibyte_payload_arrives_intact(self):
        payload = os.urandom(1024 * 1024)
        path = self.workdir / "payload.bin"
        path.write_bytes(payload)
        topic = "devices/device-001/blob"
        start = len(self.broker.log())
        sub = self.start_sub(self.proxy.port, topic, identity="client2", version="mqttv5",
                             client_id="sub-blob", args=["-N", "-q", "1"])
        self.broker.wait_subscribed("sub-blob", start=start)
        result = pub(self.proxy.port, topic, None, version="mqttv5",
                     args=["-f", str(path), "-q", "1"])
        self.assertEqual(result.returncode, 0, result.stderr)
        code, out = sub.wait()
        self.assertEqual(code, 0, sub.stderr)
        self.assertEqual(len(out), len(payload))
        self.assertTrue(out == payload, "payload differs")
        metrics = self.proxy.metrics()
        self.assertGreaterEqual(
            metrics.get_value("mqtls_forwarded_bytes_total", direction="client_to_broker"),
            len(payload))
        self.assertGreaterEqual(
            metrics.get_value("mqtls_forwarded_bytes_total", direction="broker_to_client"),
            len(payload))

    def test_both_sockets_of_a_connection_send_small_packets_at_once(self):
        # A PUBACK or a 2-byte PINGRESP must not wait behind Nagle's algorithm for an ACK, on
        # either side. The client's socket gets TCP_NODELAY from the listener it is accepted
        # from, the broker's when it connects; both are checked on mqtls's own descriptors.
        start = len(self.broker.log())
        sub = self.start_sub(self.proxy.port, "devices/device-002/nodelay", identity="client2",
                             client_id="sub-nodelay", count=0)
        self.broker.wait_subscribed("sub-nodelay", start=start)
        held = socket_inodes(self.proxy.pid)
        client_side = tcp_socket_inodes(local_port=self.proxy.port) & held
        broker_side = tcp_socket_inodes(remote_port=self.broker.port) & held
        self.assertEqual(len(client_side), 1, client_side)
        self.assertEqual(len(broker_side), 1, broker_side)
        for side, inodes in (("client", client_side), ("broker", broker_side)):
            try:
                dup = socket_of(self.proxy.pid, inodes.pop())
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.EACCES, errno.ENOSYS):
                    raise
                self.skipTest(f"cannot borrow mqtls's descriptors here: {error}")
            with dup:
                self.assertEqual(dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1,
                                 f"the {side} socket has Nagle's algorithm on")
        sub.kill()

    def test_rsa_server_certificate(self):
        config = self.proxy_config(self.broker.port, listeners=[{
            "name": "rsa",
            "bind": "127.0.0.1",
            "port": harness.free_port(),
            "tls": {"cert": cert("server-rsa.pem"), "key": cert("server-rsa.key"),
                    "client_ca": harness.CA_BUNDLE},
        }])
        rsa = self.start_proxy(config, name="mqtls-rsa")
        # The certificate served is the RSA one, for TLS 1.2 and 1.3 alike.
        expected = harness.first_cert_der(cert("server-rsa.pem"))
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            client = self.raw(rsa.port, min_version=version, max_version=version)
            self.assertEqual(client.sock.getpeercert(binary_form=True), expected)
            client.close()
        self.assert_round_trip(rsa, self.broker, "rsa")

    @unittest.skipIf(IPV6_PROBLEM, IPV6_PROBLEM)
    def test_ipv6_listener(self):
        port = harness.free_port("::1")
        config = self.proxy_config(self.broker.port, listeners=[{
            "name": "v6",
            "bind": "::1",
            "port": port,
            "tls": {"cert": cert("server-ec.pem"), "key": cert("server-ec.key"),
                    "client_ca": harness.CA_BUNDLE},
        }])
        v6 = self.start_proxy(config, name="mqtls-v6")
        start = len(self.broker.log())
        sub = self.start_sub(port, "devices/device-001/v6", identity="client2", host="::1",
                             client_id="sub-v6")
        self.broker.wait_subscribed("sub-v6", start=start)
        result = pub(port, "devices/device-001/v6", "over ipv6", host="::1", args=["-q", "1"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sub.wait(), (0, b"over ipv6\n"))
        record = v6.wait_access(listener="v6", identity="device-001")
        self.assertTrue(record["peer"].startswith("[::1]:"), record)

    def test_small_buffer_limit_still_delivers_large_payload(self):
        # With a 1 KiB buffer limit, flow control pauses and resumes reading many times.
        config = self.proxy_config(self.broker.port, limits={"buffer_limit": "1KiB"})
        small = self.start_proxy(config, name="mqtls-small-buffer")
        payload = os.urandom(1024 * 1024)
        path = self.workdir / "payload.bin"
        path.write_bytes(payload)
        start = len(self.broker.log())
        subs = [self.start_sub(small.port, "devices/device-001/flow", identity="client2",
                               client_id=f"flow-{i}", args=["-N"]) for i in range(2)]
        for i in range(2):
            self.broker.wait_subscribed(f"flow-{i}", start=start)
        result = pub(small.port, "devices/device-001/flow", None, args=["-f", str(path)])
        self.assertEqual(result.returncode, 0, result.stderr)
        for sub in subs:
            code, out = sub.wait()
            self.assertEqual(code, 0, sub.stderr)
            self.assertTrue(out == payload, f"payload differs ({len(out)} bytes)")

    def test_pipelined_packets_after_connect(self):
        # CONNECT, SUBSCRIBE and PUBLISH in one write, before any CONNACK: the packets behind
        # the CONNECT wait while mqtls dials the broker and are then forwarded in order.
        topic = "devices/device-001/pipelined"
        publish = harness.packet(harness.PUBLISH, harness.mqtt_str(topic) + b"\x00\x07" + b"body",
                                 flags=0x02)
        client = self.raw(self.proxy.port)
        client.send(harness.connect_packet(level=4, client_id="pipeliner")
                    + harness.subscribe_packet(1, topic) + publish)
        self.assertEqual(client.connack(4)["code"], 0)
        received = {}
        for _ in range(3):
            ptype, flags, body = client.read_packet()
            received[ptype] = (flags, body)
        self.assertEqual(sorted(received), [harness.PUBLISH, harness.PUBACK, harness.SUBACK])
        self.assertEqual(received[harness.PUBACK][1], b"\x00\x07")
        delivered = harness.decode_publish(*received[harness.PUBLISH])
        self.assertEqual((delivered["topic"], delivered["payload"]), (topic, b"body"))

    def test_idle_sender_after_large_publish_is_not_held_back(self):
        # A 300 KiB QoS 1 PUBLISH (many TLS records) through a 1 KiB buffer limit, then silence:
        # flow control pauses reading often, yet every byte must reach the broker without the
        # client sending anything more (no bytes may stay parked inside the TLS layer).
        config = self.proxy_config(self.broker.port, limits={"buffer_limit": "1KiB"})
        small = self.start_proxy(config, name="mqtls-idle-sender")
        topic = "devices/device-001/tail"
        payload = bytes(range(256)) * 1200
        client = self.raw(small.port)
        client.send(harness.connect_packet(level=4, client_id="tail", keepalive=0))
        self.assertEqual(client.connack(4)["code"], 0)
        client.send(harness.subscribe_packet(1, topic))
        self.assertEqual(client.read_packet()[0], harness.SUBACK)
        client.send(harness.packet(harness.PUBLISH,
                                   harness.mqtt_str(topic) + b"\x00\x09" + payload, flags=0x02))
        received = {}
        for _ in range(2):
            ptype, flags, body = client.read_packet()
            received[ptype] = (flags, body)
        self.assertEqual(received[harness.PUBACK][1], b"\x00\x09")
        self.assertEqual(harness.decode_publish(*received[harness.PUBLISH])["payload"], payload)

    def test_fire_and_forget_client(self):
        # CONNECT + PUBLISH + DISCONNECT in one write and an immediate clean close, before the
        # broker was even dialled: the message is still delivered.
        topic = "devices/device-001/fire-and-forget"
        sub = harness.Sub(self.proxy.port, topic)
        self.broker.wait_subscribed(sub.client_id)
        client = self.raw(self.proxy.port)
        publish = harness.packet(harness.PUBLISH, harness.mqtt_str(topic) + b"gone")
        client.send(harness.connect_packet(level=4, client_id="fire")
                    + publish + harness.packet(harness.DISCONNECT, b""))
        client.close()
        code, out = sub.wait()
        self.assertEqual(code, 0)
        self.assertIn(b"gone", out)

    def test_connect_sent_byte_by_byte(self):
        client = self.raw(self.proxy.port)
        for byte in harness.connect_packet(level=5, client_id="trickle", username="x"):
            client.send(bytes([byte]))
        self.assertEqual(client.connack(5)["code"], 0)
        client.ping()
        self.broker.wait_for_log(r"New client connected from \S+ as trickle .*u'device-001'")

    def test_tls_session_resumption_keeps_the_identity(self):
        first = self.raw_session(self.proxy.port, client_id="resume-1")
        first.ping()  # by now the session ticket has arrived
        session = first.sock.session
        self.assertIsNotNone(session)
        first.close()
        start = len(self.broker.log())
        second = self.raw(self.proxy.port, session=session)
        self.assertTrue(second.sock.session_reused, "session was not resumed")
        second.send(harness.connect_packet(level=4, client_id="resume-2", username="admin"))
        self.assertEqual(second.connack(4)["code"], 0)
        self.broker.wait_for_log(r"New client connected from \S+ as resume-2 .*u'device-001'",
                                 start=start)
        self.assertGreaterEqual(self.proxy.metric("mqtls_tls_handshakes_total", result="resumed"),
                                1)
        second.close()
        self.assertEqual(self.proxy.wait_access(client_id="resume-2")["resumed"], "true")

    def test_alpn(self):
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["alpn"] = ["mqtt"]
        alpn = self.start_proxy(config, name="mqtls-alpn")
        client = self.raw(alpn.port, alpn=["mqtt"])
        self.assertEqual(client.sock.selected_alpn_protocol(), "mqtt")
        client.send(harness.connect_packet(level=4, client_id="alpn"))
        self.assertEqual(client.connack(4)["code"], 0)


if __name__ == "__main__":
    unittest.main()

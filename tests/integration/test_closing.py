"""How connections end: a client that reads slowly still gets everything the broker sent before
it closed, then a clean TLS close_notify; a handshake refused by mqtls reaches the client as a
TLS alert, never as a connection reset."""

import ssl
import threading
import time
import unittest
from pathlib import Path

import harness
from harness import IntegrationTest, PublishCounter, connect_packet

# Mosquitto must not drop QoS 0 messages for a subscriber that is behind.
NO_BROKER_DROPS = "max_queued_messages 0\nmax_queued_bytes 0\n"


def kernel_send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to by itself (tcp_wmem's maximum)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


class SlowReaderTest(IntegrationTest):
    # The kernel buffers up to tcp_wmem's maximum (4 MiB by default) of what mqtls sends to
    # even the slowest client, so mqtls itself must still hold more than 5 s of reading when
    # the broker closes: the transfer is that much plus 7 s at RATE (about 14 MiB, 10 s), and
    # the flush ends with a full kernel send buffer.
    RATE = 3 * 512 * 1024  # bytes per second the subscriber reads
    SIZE = 64 * 1024
    MESSAGES = -(-(kernel_send_buffer_max() + 7 * RATE) // SIZE)

    def test_slow_reader_gets_everything_after_the_broker_closes(self):
        broker = self.start_broker(extra_conf=NO_BROKER_DROPS)
        # A buffer large enough that mqtls holds all of it when the broker closes.
        limit = f"{2 * self.MESSAGES * self.SIZE // 1024}KiB"
        proxy = self.start_proxy(self.proxy_config(broker.port, limits={"buffer_limit": limit}))
        topic = "devices/device-001/slow"
        start = len(broker.log())
        subscriber = self.raw_session(proxy.port, client_id="slow-sub", identity="client2",
                                      keepalive=0, rcvbuf=4096)
        subscriber.subscribe(topic)
        broker.wait_subscribed("slow-sub", start=start)
        bulk = harness.BulkMessages(topic, self.MESSAGES, self.SIZE)
        reader = SlowReader(subscriber, self.RATE)
        self.addCleanup(subscriber.sock.close)
        reader.start()

        publisher = harness.plain_session(broker.port, "slow-pub", username="device-001")
        self.addCleanup(publisher.close)
        publisher.sendall(b"".join(bulk.packet(i) for i in range(bulk.count)))
        # Everything is in mqtls (read from the broker) before the broker closes.
        proxy.wait_metric("mqtls_forwarded_bytes_total", at_least=bulk.packet_bytes,
                          direction="broker_to_client")
        # Session takeover: the broker closes the subscriber's connection to it.
        takeover_at = time.monotonic()
        takeover = harness.plain_session(broker.port, "slow-sub", username="device-002")
        self.addCleanup(takeover.close)
        broker.wait_for_log(r"Client slow-sub already connected, closing old connection",
                            start=start)

        reader.join(60)
        self.assertFalse(reader.is_alive(), "the subscriber is still reading after 60 s")
        counter = reader.counter
        self.assertEqual((counter.messages, counter.payload_bytes),
                         (bulk.count, bulk.payload_bytes),
                         f"the subscriber did not get everything the broker sent "
                         f"(ended by {reader.end!r})")
        self.assertEqual(counter.digest(), bulk.digest())
        self.assertEqual(reader.end, "close_notify",
                         "the connection did not end with a TLS close_notify")
        # The flush after the broker's close outlasted the old absolute 5 s deadline: it is an
        # idle deadline, renewed while the client keeps reading.
        self.assertGreater(reader.ended_at - takeover_at, 5.5,
                           "the test did not read slowly enough to cover the flush deadline")
        self.assertEqual(proxy.wait_access(client_id="slow-sub")["close"], "broker_closed")


class SlowReader(threading.Thread):
    """Reads a RawClient's connection at about rate bytes per second until it ends; end is
    "close_notify" for a clean TLS close, else a description of the error."""

    def __init__(self, client: harness.RawClient, rate: int):
        super().__init__(daemon=True)
        self.counter = PublishCounter(client.sock)
        self.rate = rate
        self.end = None
        self.ended_at = None

    def run(self):
        started = time.monotonic()
        try:
            while self.counter.read_some(4096, timeout=30):
                pause = started + self.counter.bytes_read / self.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            self.end = "close_notify"
        except (OSError, ValueError) as error:
            self.end = f"{type(error).__name__}: {error}"
        self.ended_at = time.monotonic()


class HandshakeRefusalTest(IntegrationTest):
    """A device that finishes its side of the handshake sends its CONNECT at once and then
    reads. When mqtls refused its certificate, that read must return mqtls's TLS alert: a
    reset (from closing a socket with the CONNECT unread) would destroy the alert and tell the
    device nothing."""

    ATTEMPTS = 20

    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.proxy = self.start_proxy(self.proxy_config(self.broker.port))

    def outcome(self, identity, version) -> str:
        """The alert the client got ('alert <reason>') or what happened instead."""
        step = "handshake"
        try:
            client = harness.RawClient(self.proxy.port, identity=identity, min_version=version,
                                       max_version=version, timeout=10)
            try:
                step = "sending the CONNECT"
                client.send(connect_packet(level=4, client_id="refused"))
                step = "reading"
                data = client.sock.recv(1024)
                return f"{step}: got {data!r} instead of an alert"
            finally:
                client.close()
        except ssl.SSLError as error:
            if type(error) is ssl.SSLError and error.reason:
                return f"alert {error.reason}"
            return f"{step}: {type(error).__name__}: {error}"
        except OSError as error:
            return f"{step}: {type(error).__name__}: {error}"

    def assert_alerts(self, identity, version, reason):
        outcomes = [self.outcome(identity, version) for _ in range(self.ATTEMPTS)]
        wrong = [o for o in outcomes if o != f"alert {reason}"]
        self.assertEqual(wrong, [], f"{len(wrong)} of {self.ATTEMPTS} clients did not get the "
                                    f"alert {reason}")
        self.assertTrue(self.proxy.running())

    def test_no_certificate_tls13(self):
        self.assert_alerts(None, ssl.TLSVersion.TLSv1_3, "TLSV13_ALERT_CERTIFICATE_REQUIRED")

    def test_unknown_ca_tls13(self):
        self.assert_alerts("client-wrongca", ssl.TLSVersion.TLSv1_3, "TLSV1_ALERT_UNKNOWN_CA")

    def test_no_certificate_tls12(self):
        # TLS 1.2 has no certificate_required alert: OpenSSL sends handshake_failure.
        self.assert_alerts(None, ssl.TLSVersion.TLSv1_2, "SSLV3_ALERT_HANDSHAKE_FAILURE")

    def test_unknown_ca_tls12(self):
        self.assert_alerts("client-wrongca", ssl.TLSVersion.TLSv1_2, "TLSV1_ALERT_UNKNOWN_CA")


if __name__ == "__main__":
    unittest.main()

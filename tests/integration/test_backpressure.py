"""Back-pressure, both directions: when one side stops reading, mqtls stops reading the other
side once limits.buffer_limit is buffered, so its memory stays bounded however much the sender
pushes; when the reader resumes, every byte still arrives, in order."""

import signal
import threading
import time
import unittest

import harness
from harness import IntegrationTest, PublishCounter, rss_kib

BUFFER_LIMIT_KIB = 256
# A sanitizer build keeps freed memory in quarantine and maps shadow memory for what the heap
# touches, so its resident size grows with churn whatever mqtls buffers.
SANITIZED = harness.SANITIZED
# Allowed growth of mqtls's resident size over its size before the transfer, on top of the
# buffer limit: allocator slack, OpenSSL and libevent buffers of the two connections. Without
# back-pressure the growth is the whole transfer (hundreds of MiB), far beyond either bound.
SLACK_KIB = (48 if SANITIZED else 16) * 1024
PAUSE = 10.0  # seconds the reader stops reading
MESSAGES = 3200
SIZE = 64 * 1024  # 200 MiB in all
TOPIC = "devices/device-001/bulk"
# Mosquitto must not drop QoS 0 messages for a subscriber that is behind, so that "everything
# arrives" is a fair assertion: no limit on its queue.
NO_BROKER_DROPS = "max_queued_messages 0\nmax_queued_bytes 0\n"


class Sender(threading.Thread):
    """Sends every packet of bulk on sock, in 1 MiB writes that never block for long; stops at
    the deadline or when stop is set. sent counts the bytes handed to the socket."""

    def __init__(self, sock, bulk: harness.BulkMessages, deadline: float):
        super().__init__(daemon=True)
        self.sock, self.bulk, self.deadline = sock, bulk, deadline
        self.stop = threading.Event()
        self.sent = 0
        self.error = None

    def run(self):
        try:
            batch = []
            for i in range(self.bulk.count):
                batch.append(self.bulk.packet(i))
                if len(batch) == 16 or i == self.bulk.count - 1:
                    data = b"".join(batch)
                    harness.send_without_hanging(self.sock, data, self.deadline, self.stop)
                    self.sent += len(data)
                    batch = []
        except (OSError, ValueError) as error:
            self.error = error


class Receiver(threading.Thread):
    """Counts the PUBLISHes arriving on sock until count of them arrived or the deadline."""

    def __init__(self, sock, count: int, deadline: float):
        super().__init__(daemon=True)
        self.counter = PublishCounter(sock)
        self.count, self.deadline = count, deadline
        self.error = None

    def run(self):
        try:
            while self.counter.messages < self.count:
                if not self.counter.read_some(
                        timeout=max(0.1, self.deadline - time.monotonic())):
                    self.error = "connection closed"
                    return
        except (OSError, ValueError) as error:
            self.error = error


class BackPressureTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker(extra_conf=NO_BROKER_DROPS)
        config = self.proxy_config(self.broker.port,
                                   limits={"buffer_limit": f"{BUFFER_LIMIT_KIB}KiB"})
        self.proxy = self.start_proxy(config)
        self.bulk = harness.BulkMessages(TOPIC, MESSAGES, SIZE)
        self.deadline = time.monotonic() + 90

    def subscriber(self):
        start = len(self.broker.log())
        client = self.raw_session(self.proxy.port, client_id="bulk-sub", identity="client2",
                                  keepalive=0)
        client.subscribe(TOPIC)
        self.broker.wait_subscribed("bulk-sub", start=start)
        return client

    def peak_rss_while(self, seconds: float) -> int:
        """The largest resident size of mqtls sampled over the next seconds, in KiB."""
        peak = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peak = max(peak, rss_kib(self.proxy.pid))
            time.sleep(0.1)
        return peak

    def assert_bounded(self, before: int, peak: int) -> None:
        allowed = before + BUFFER_LIMIT_KIB + SLACK_KIB
        self.assertLessEqual(peak, allowed,
                             f"mqtls grew from {before} KiB to {peak} KiB while the reader "
                             f"was stopped (allowed: {allowed} KiB)")

    def assert_everything_arrived(self, receiver: Receiver) -> None:
        receiver.join(max(1, self.deadline - time.monotonic()))
        counter = receiver.counter
        self.assertIsNone(receiver.error)
        self.assertEqual((counter.messages, counter.payload_bytes),
                         (self.bulk.count, self.bulk.payload_bytes))
        self.assertEqual(counter.digest(), self.bulk.digest())

    def test_client_to_broker(self):
        # The broker stops reading (SIGSTOP) while a client pushes 200 MiB through mqtls.
        receiver = Receiver(self.subscriber().sock, self.bulk.count, self.deadline)
        publisher = self.raw_session(self.proxy.port, client_id="bulk-pub", keepalive=0)
        publisher.ping()
        before = rss_kib(self.proxy.pid)
        self.broker.send_signal(signal.SIGSTOP)
        self.addCleanup(self.broker.send_signal, signal.SIGCONT)
        sender = Sender(publisher.sock, self.bulk, self.deadline)
        self.addCleanup(sender.stop.set)
        sender.start()
        peak = self.peak_rss_while(PAUSE)
        stalled_at = sender.sent
        self.broker.send_signal(signal.SIGCONT)
        self.assert_bounded(before, peak)
        self.assertLess(stalled_at, self.bulk.packet_bytes // 2,
                        "the client was never held back")
        receiver.start()
        sender.join(max(1, self.deadline - time.monotonic()))
        self.assertIsNone(sender.error)
        self.assertEqual(sender.sent, self.bulk.packet_bytes)
        self.assert_everything_arrived(receiver)

    def test_broker_to_client(self):
        # A subscriber stops reading while 200 MiB are published to it straight at the broker.
        subscriber = self.subscriber()
        publisher = harness.plain_session(self.broker.port, "bulk-pub", username="device-001")
        self.addCleanup(publisher.close)
        before = rss_kib(self.proxy.pid)
        sender = Sender(publisher, self.bulk, self.deadline)
        self.addCleanup(sender.stop.set)
        sender.start()
        peak = self.peak_rss_while(PAUSE)
        forwarded = self.proxy.metric("mqtls_forwarded_bytes_total",
                                      direction="broker_to_client")
        self.assert_bounded(before, peak)
        self.assertLess(forwarded, self.bulk.packet_bytes // 2,
                        "mqtls forwarded most of the transfer to a client that was not reading")
        receiver = Receiver(subscriber.sock, self.bulk.count, self.deadline)
        receiver.start()
        self.assert_everything_arrived(receiver)
        sender.join(max(1, self.deadline - time.monotonic()))
        self.assertIsNone(sender.error)


if __name__ == "__main__":
    unittest.main()

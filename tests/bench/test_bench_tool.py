"""mqtls-bench and mqtls-ceiling do what they print: against the real mqtls in front of a real
Mosquitto, every scenario completes with no error, resumed handshakes are resumed in mqtls's own
access records, idle connections are held, the server-side figures are present; a host name and
an IPv6 address reach the same proxy, the server name goes out as SNI and is the name the server
certificate is checked against; --topic-prefix reaches a broker with a per-identity ACL; a target
that refuses fails the run (exit 1) and a host that cannot be resolved is a usage error (exit 2);
mqtls-ceiling reports each handshake it runs.
Functional only: no figure is compared with a threshold (this is not a timed test).

Environment (set by ctest): MQTLS_BENCH, MQTLS_CEILING, and what the integration harness reads
(MQTLS_BIN, MQTLS_CERTS_DIR, MQTLS_MOSQUITTO).
"""

import os
import re
import socket
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from harness import (CA_BUNDLE, MOSQUITTO, IntegrationTest, Process, cert,  # noqa: E402
                     free_port, ipv6_loopback_problem, to_yaml, wait_until)

BUILD_BENCH = Path(__file__).resolve().parents[2] / "build" / "tests" / "bench"
BENCH = os.environ.get("MQTLS_BENCH") or str(BUILD_BENCH / "mqtls-bench")
CEILING = os.environ.get("MQTLS_CEILING") or str(BUILD_BENCH / "mqtls-ceiling")
HANDSHAKES = ["connect-tls13", "connect-tls12", "resume-tls13", "resume-tls12"]


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def table(output: str, heading: str) -> dict[str, list[str]]:
    """{row title: cells} of the report table under the line starting with `heading`."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = {}
    # Skip the heading's own wrapped lines, then the column header; the table ends at a blank.
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("scenario"))
    for line in lines[at + 1:]:
        if not line.strip():
            break
        title, cells = re.match(r"(.+?\S)\s{2,}(.*)$", line).groups()
        rows[title] = re.split(r"\s{2,}", cells.strip())
    return rows


class OpenBroker(Process):
    """Mosquitto on a free loopback port as scripts/bench.sh runs it: open to any topic, errors
    only in its log (a line per message would slow every scenario), a deep queue, Nagle off."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "log_dest stderr\nlog_type error\nmax_queued_messages 100000\n"
                        "set_tcp_nodelay true\n")
        super().__init__("mosquitto", [MOSQUITTO, "-c", str(conf)], workdir / "mosquitto.log")

    def wait_ready(self) -> None:
        wait_until(self.listening, what=f"mosquitto listening on {self.port}")

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False


class BenchToolTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = OpenBroker(self.workdir)
        self._track(self.broker, "mosquitto")  # stopped at teardown even if it never listens
        self.broker.wait_ready()
        config = self.proxy_config(self.broker.port)
        config["workers"] = 1
        config["listeners"][0]["bind"] = "::"  # IPv4 and IPv6
        self.proxy = self.start_proxy(config)

    def bench(self, *args: str, pids: bool = True, host: list[str] | None = None):
        target = f"mqtls=tls:{self.proxy.port}"
        if pids:
            target += f":{self.proxy.pid},{self.broker.pid}"
        return run([BENCH, "--target", target, "--cert", cert("client.pem"),
                    "--key", cert("client.key"), "--ca", CA_BUNDLE, *(host or []),
                    "--duration", "0.4", "--warmup", "0.1", *args])

    def assertWorked(self, result):
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertNotIn("FAILED", result.stdout)

    def test_every_scenario_works_and_reports_its_figures(self):
        scenarios = HANDSHAKES + ["publish-64", "publish-16k", "pingpong-64", "idle-40"]
        result = self.bench("--target", f"broker=plain:{self.broker.port}:{self.broker.pid}",
                            "--scenarios", ",".join(scenarios))
        self.assertWorked(result)
        rates = table(result.stdout, "Rates")
        self.assertEqual(len(rates), len(scenarios), result.stdout)
        for title, cells in rates.items():
            with self.subTest(title=title):
                self.assertGreater(float(cells[0].split()[0]), 0)
                if "resumed" in title:
                    self.assertGreaterEqual(int(re.search(r"(\d+)% resumed", cells[0])[1]), 90)
        cpu = table(result.stdout, "Server CPU per operation")
        for title, cells in cpu.items():
            with self.subTest(title=title):
                server, total = (float(v) for v in cells[0].split(" / "))
                if title.startswith("idle"):
                    self.assertGreaterEqual(server, 0)  # 40 handshakes: maybe under a tick
                else:
                    self.assertGreater(server, 0)
                self.assertGreaterEqual(total, server)
        # The memory figure itself may be anything (under a sanitizer RSS even shrinks).
        self.assertRegex(result.stdout, r"idle 40 connections\s+mqtls\s+idle connections: 40 open, "
                                        r"0 errors, -?[\d.]+ KiB per connection")
        # What the tool calls resumed, mqtls resumed: its access records agree.
        wait_until(lambda: len(self.proxy.access_records()) >= 40, what="access records")
        resumed = [r for r in self.proxy.access_records() if r.get("resumed") == "true"]
        self.assertTrue(resumed, "no resumed handshake in mqtls's access records")

    def test_a_host_name_and_an_ipv6_address_reach_the_proxy(self):
        hosts = [["--host", "localhost"]]
        if ipv6_loopback_problem() is None:
            hosts.append(["--host", "::1"])
        for host in hosts:
            with self.subTest(host=host[1]):
                result = self.bench("--verify-server", "--scenarios", "connect-tls13,publish-64",
                                    host=host)
                self.assertWorked(result)
                # localhost is 127.0.0.1, or ::1 first where the hosts file says so.
                shown = r"\[::1\]" if host[1] == "::1" else r"(127\.0\.0\.1|\[::1\])"
                self.assertRegex(result.stdout, rf"mTLS {shown}:{self.proxy.port}")

    def test_the_server_name_is_sent_and_checked(self):
        # A name goes out as SNI (mqtls records it) and the certificate must carry it.
        result = self.bench("--verify-server", "--server-name", "localhost",
                            "--scenarios", "connect-tls12")
        self.assertWorked(result)
        wait_until(lambda: self.handshaken(), what="an access record")
        self.assertEqual({r.get("sni") for r in self.handshaken()}, {"localhost"})
        # The server certificate does not name wrong.example: every handshake fails.
        result = self.bench("--verify-server", "--server-name", "wrong.example",
                            "--scenarios", "connect-tls13")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("certificate verify failed", result.stdout)
        # By address, without --server-name: no SNI, and the address is what is checked.
        start = len(self.handshaken())
        result = self.bench("--verify-server", "--scenarios", "connect-tls13")
        self.assertWorked(result)
        records = self.handshaken()[start:]
        self.assertTrue(records)
        self.assertEqual({r.get("sni") for r in records}, {"-"})

    def handshaken(self) -> list[dict]:
        """mqtls's access records of connections whose handshake completed (those the tool
        abandons mid-handshake when a run ends have no server name yet)."""
        return [r for r in self.proxy.access_records() if r.get("tls", "-") != "-"]

    def test_a_target_without_pids_reports_no_server_figures(self):
        result = self.bench("--scenarios", "connect-tls13,idle-10", pids=False)
        self.assertWorked(result)
        self.assertIn("no server pids (client-side figures only)", result.stdout)
        for title, cells in table(result.stdout, "Server CPU per operation").items():
            self.assertEqual(cells, ["-"], title)
        self.assertEqual(table(result.stdout, "Idle memory")["idle 10 connections"], ["-"])
        self.assertNotIn("memory did not grow", result.stdout)

    def test_a_refusing_target_fails_the_run_and_a_bad_host_is_a_usage_error(self):
        self.proxy.stop()
        result = self.bench("--scenarios", "connect-tls13")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertRegex(result.stdout, r"FAILED: .*connect: Connection refused")
        result = self.bench("--scenarios", "connect-tls13", host=["--host", "no-such-host.invalid"])
        self.assertEqual(result.returncode, 2)
        self.assertIn("cannot resolve 'no-such-host.invalid'", result.stderr)


class TopicPrefixTest(IntegrationTest):
    def test_a_per_identity_acl_needs_the_topic_prefix(self):
        # The harness broker lets a client write only under devices/<user name>/, and mqtls
        # makes the certificate's CN (device-001) the user name.
        broker = self.start_broker()
        proxy = self.start_proxy(self.proxy_config(broker.port))

        def publish(*prefix: str):
            return run([BENCH, "--target", f"mqtls=tls:{proxy.port}", "--cert", cert("client.pem"),
                        "--key", cert("client.key"), "--duration", "0.3", "--warmup", "0",
                        "--rate", "200", "--scenarios", "publish-64", *prefix])

        denied = publish()
        self.assertEqual(denied.returncode, 1, denied.stdout)
        self.assertRegex(denied.stdout, r"FAILED: 0 messages received")
        allowed = publish("--topic-prefix", "devices/device-001")
        self.assertEqual(allowed.returncode, 0, allowed.stdout + allowed.stderr)
        bad = publish("--topic-prefix", "devices/+")
        self.assertEqual(bad.returncode, 2)


class CeilingToolTest(IntegrationTest):
    def test_each_handshake_is_reported(self):
        config = self.proxy_config(1)
        path = self.workdir / "mqtls.yaml"
        path.write_text(to_yaml(config))
        scenarios = [name.replace("connect-", "full-") if name.startswith("connect-") else name
                     for name in HANDSHAKES]
        result = run([CEILING, "--config", str(path), "--cert", cert("client.pem"),
                      "--key", cert("client.key"), "--ca", CA_BUNDLE, "--duration", "0.3",
                      "--scenarios", ",".join(scenarios)])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        for name in scenarios:
            with self.subTest(scenario=name):
                found = re.search(rf"^ceiling {name} server_cpu_us=([\d.]+)", result.stdout,
                                  re.MULTILINE)
                self.assertIsNotNone(found, result.stdout)
                self.assertGreater(float(found[1]), 0)


if __name__ == "__main__":
    unittest.main()

"""deploy/systemd/mqtls.service: `systemd-analyze verify` accepts it (and rejects broken copies of
it, so the check can fail), it carries the hardening it promises, its exposure score stays low,
LimitNOFILE covers the shipped connection cap, and its ExecReload really reloads a running mqtls.

The unit names /usr/bin/mqtls, which exists only once the package is installed, so verify runs
on a copy whose binary path is the mqtls under test.

Environment (set by ctest): MQTLS_BIN, MQTLS_CERTS_DIR, MQTLS_SYSTEMD_ANALYZE.
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import harness  # noqa: E402
from harness import IntegrationTest, free_port  # noqa: E402

SOURCE_DIR = Path(__file__).resolve().parents[2]
UNIT = SOURCE_DIR / "deploy" / "systemd" / "mqtls.service"
EXAMPLE_CONFIG = SOURCE_DIR / "config" / "mqtls.example.yaml"
ANALYZE = os.environ.get("MQTLS_SYSTEMD_ANALYZE") or "systemd-analyze"
INSTALLED_BIN = "/usr/bin/mqtls"
INSTALLED_CONFIG = "/etc/mqtls/mqtls.yaml"
# Descriptors besides the two per connection: listeners, admin, watches, event loops, logs.
FD_HEADROOM = 1024
# systemd-analyze security's exposure score (0 = locked down, 10 = unprotected).
MAX_EXPOSURE = 2.5


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}; keys may repeat, as systemd allows."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def verify(unit_text: str) -> tuple[bool, str]:
    """Runs systemd-analyze verify on unit_text saved as mqtls.service. Passes only with exit 0
    and no output at all: systemd reports unknown keys and unparsable values as warnings while
    still exiting 0, and such a line is a setting silently not applied."""
    with tempfile.TemporaryDirectory(prefix="mqtls-unit-") as tmp:
        path = Path(tmp) / "mqtls.service"
        path.write_text(unit_text)
        result = subprocess.run([ANALYZE, "verify", str(path)], capture_output=True, text=True,
                                timeout=60)
    output = (result.stdout + result.stderr).strip()
    return result.returncode == 0 and not output, f"exit {result.returncode}: {output}"


def testable(unit_text: str) -> str:
    """The unit with the installed binary path replaced by the binary under test."""
    return unit_text.replace(INSTALLED_BIN, harness.MQTLS_BIN)


class UnitFileTest(unittest.TestCase):
    def setUp(self):
        self.text = UNIT.read_text()
        self.unit = parse_unit(self.text)
        self.service = self.unit["Service"]

    def one(self, key: str) -> str:
        values = self.service.get(key, [])
        self.assertEqual(len(values), 1, f"[Service] {key}= should be set once: {values}")
        return values[0]

    def test_systemd_analyze_verify_passes(self):
        self.assertTrue(os.path.exists(harness.MQTLS_BIN), harness.MQTLS_BIN)
        ok, output = verify(testable(self.text))
        self.assertTrue(ok, output)

    def test_verify_rejects_broken_units(self):
        broken = {
            "missing binary": self.text.replace(INSTALLED_BIN, "/nonexistent/mqtls"),
            "misspelt key": testable(self.text).replace("NoNewPrivileges=", "NoNewPrivilege="),
            "bad value": testable(self.text).replace("Restart=on-failure", "Restart=sometimes"),
            "key in wrong section": testable(self.text).replace(
                "[Service]\n", "[Service]\nWantedBy=multi-user.target\n", 1),
        }
        for what, text in broken.items():
            with self.subTest(what):
                self.assertNotEqual(text, self.text, what)
                ok, output = verify(text)
                self.assertFalse(ok, f"{what}: verify accepted it ({output})")

    def test_runs_the_package_binary_as_the_package_user(self):
        self.assertEqual(self.one("ExecStart"), f"{INSTALLED_BIN} --config {INSTALLED_CONFIG}")
        self.assertEqual(self.one("ExecStartPre"),
                         f"{INSTALLED_BIN} --check --config {INSTALLED_CONFIG}")
        self.assertEqual(self.one("User"), "mqtls")
        self.assertEqual(self.one("Group"), "mqtls")
        self.assertNotIn("DynamicUser", self.service)
        self.assertNotIn("WantedBy", self.service)
        self.assertEqual(self.unit["Install"]["WantedBy"], ["multi-user.target"])

    def test_hardening(self):
        expected = {
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
            "ProtectHome": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet":
            "CAP_NET_BIND_SERVICE", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
            "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
        }
        for key, value in expected.items():
            with self.subTest(key):
                self.assertEqual(self.one(key), value)
        self.assertIn(self.one("Restart"), ("on-failure", "always"))
        self.assertEqual(self.one("ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertNotIn("ReadWritePaths", self.service)
        # @resources is denied, but worker_scheduling: batch (the default) needs this one call.
        filters = self.service.get("SystemCallFilter", [])
        self.assertIn("~@privileged @resources", filters)
        self.assertIn("sched_setscheduler", filters[filters.index("~@privileged @resources"):])

    def test_exposure_score(self):
        with tempfile.TemporaryDirectory(prefix="mqtls-unit-") as tmp:
            path = Path(tmp) / "mqtls.service"
            path.write_text(testable(self.text))
            result = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager",
                                     f"--threshold={MAX_EXPOSURE * 10:.0f}", str(path)],
                                    capture_output=True, text=True, timeout=60)
        match = re.search(r"Overall exposure level for mqtls\.service: ([0-9.]+)", result.stdout)
        self.assertIsNotNone(match, result.stdout + result.stderr)
        self.assertLessEqual(float(match.group(1)), MAX_EXPOSURE, result.stdout)
        self.assertEqual(result.returncode, 0, result.stdout[-2000:] + result.stderr)

    def test_file_limit_covers_the_connection_cap(self):
        match = re.search(r"^\s*max_connections:\s*(\d+)", EXAMPLE_CONFIG.read_text(), re.M)
        self.assertIsNotNone(match, "limits.max_connections in config/mqtls.example.yaml")
        needed = 2 * int(match.group(1)) + FD_HEADROOM
        self.assertGreaterEqual(int(self.one("LimitNOFILE")), needed)


class ExecReloadTest(IntegrationTest):
    def test_exec_reload_reloads_a_running_proxy(self):
        service = parse_unit(UNIT.read_text())["Service"]
        proxy = self.start_proxy(self.proxy_config(free_port()))
        before = proxy.metric("mqtls_tls_reloads_total", result="ok")
        argv = [word.replace("$MAINPID", str(proxy.pid))
                for word in shlex.split(service["ExecReload"][0])]
        subprocess.run(argv, check=True, timeout=10)
        proxy.wait_metric("mqtls_tls_reloads_total", before + 1, result="ok")
        self.assertTrue(proxy.running())


if __name__ == "__main__":
    unittest.main()

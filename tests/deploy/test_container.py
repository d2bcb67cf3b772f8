"""The container image (deploy/container/Containerfile), built from source with podman by
scripts/image.sh and run beside Mosquitto, the two sharing one network namespace as in a pod:
the broker listens on that namespace's loopback only, and mqtls, in front of it, is reached
through ports published on the host's loopback. Through it a device publishes with a client
certificate while claiming another username, and the broker must see the certificate's CN;
/readyz answers 200 and the image's HEALTHCHECK passes; the server certificate is replaced in
the mounted directory and served without a restart; `podman stop` drains and exits 0 within the
drain deadline. The runtime image is checked for size, user, and the absence of compilers and
-dev packages.

Podman runs with the project's deploy/container/containers.conf (runc, no raised ulimits) and
`--runtime runc`. A machine where podman cannot run a container skips these tests, saying why;
missing podman or debootstrap is a failure (scripts/setup.sh installs them).

Environment (set by ctest): MQTLS_CERTS_DIR, the PKI made by certs/gen.sh.
"""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import harness  # noqa: E402
from harness import Sub, cert, free_port, pub, wait_until  # noqa: E402

SOURCE_DIR = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = SOURCE_DIR / "scripts" / "image.sh"
CONTAINERS_CONF = SOURCE_DIR / "deploy" / "container" / "containers.conf"
CONTAINER_CONFIG = SOURCE_DIR / "deploy" / "container" / "mqtls.yaml"
IMAGE = "localhost/mqtls:latest"
BROKER_IMAGE = "localhost/mqtls-mosquitto:latest"
BASE_IMAGE = "localhost/mqtls-base:bookworm"
ENV = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), "MQTLS_IMAGE": IMAGE,
       "MQTLS_BROKER_IMAGE": BROKER_IMAGE, "MQTLS_BASE_IMAGE": BASE_IMAGE}
APP_UID = 10001  # the image's mqtls user
DRAIN_SECONDS = 3
IMAGE_BUDGET = 160 * 1000 * 1000  # bytes, uncompressed, base included

BROKER_CONF = """\
listener 1883 127.0.0.1
allow_anonymous true
acl_file /etc/mosquitto/acl
log_dest stderr
log_type all
connection_messages true
"""
# A device may write only under its own username, so a message arriving under devices/<CN>/
# shows the broker saw the certificate's CN, not the username the device claimed.
BROKER_ACL = "pattern read devices/#\npattern write devices/%u/#\n"


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Runs podman with the project's settings; with check, a non-zero exit fails the test with
    podman's stderr."""
    result = subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True,
                            text=True, timeout=timeout, env=ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stderr[-3000:]}")
    return result


def run_image_script(what: str, timeout: float) -> float:
    """Runs scripts/image.sh what; returns its duration in seconds, fails with its output."""
    start = time.monotonic()
    result = subprocess.run(["bash", str(IMAGE_SCRIPT), what], capture_output=True, text=True,
                            timeout=timeout, env=ENV)
    if result.returncode != 0:
        raise AssertionError(f"scripts/image.sh {what} exited {result.returncode}:\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return time.monotonic() - start


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def served_certificate(port: int) -> bytes | None:
    """DER of the certificate mqtls serves on 127.0.0.1:port to a client holding client.pem;
    None when the handshake does not complete."""
    context = harness.client_context("client")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


def install(source: str, target: Path, owner: int | None = None, mode: int = 0o644) -> None:
    """Replaces target by a copy of source the way a rotation does: written beside it, then
    renamed over it, so a reader never sees half a file."""
    temporary = target.with_name(f".{target.name}.new")
    shutil.copyfile(source, temporary)
    os.chmod(temporary, mode)
    if owner is not None:
        os.chown(temporary, owner, owner)
    os.replace(temporary, target)


class ContainerImage(unittest.TestCase):
    """Builds the images once (the first build on a machine also makes the base image), then
    runs each check against them."""

    @classmethod
    def setUpClass(cls):
        for tool in ("podman", "debootstrap", "mosquitto_pub", "mosquitto_sub"):
            if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
                raise AssertionError(f"{tool} is missing: run scripts/setup.sh")
        base_seconds = run_image_script("base", timeout=900)
        probe = podman("run", "--rm", BASE_IMAGE, "true", check=False)
        if probe.returncode != 0:
            raise unittest.SkipTest(f"podman cannot run a container on this machine: "
                                    f"{probe.stderr.strip()[-1500:]}")
        build_seconds = run_image_script("all", timeout=1500)
        cls.size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
        sys.stderr.write(f"\nbase image: {base_seconds:.0f} s; images: {build_seconds:.0f} s; "
                         f"{IMAGE}: {cls.size} bytes ({cls.size / 1e6:.1f} MB)\n")

    def in_image(self, *argv: str) -> subprocess.CompletedProcess:
        """Runs argv in a throwaway container of the mqtls image (its entrypoint replaced)."""
        return podman("run", "--rm", "--network", "none", "--entrypoint", argv[0], IMAGE,
                      *argv[1:], check=False)

    def test_runtime_image_is_small_and_holds_no_build_tools(self):
        self.assertLess(self.size, IMAGE_BUDGET, f"{IMAGE} is {self.size} bytes")
        packages = self.in_image("dpkg-query", "-W", "-f", "${Package}\n")
        self.assertEqual(packages.returncode, 0, packages.stderr)
        names = packages.stdout.split()
        self.assertIn("libssl3", names)
        build_tools = {"gcc", "g++", "cpp", "make", "cmake", "binutils", "pkg-config",
                       "libc6-dev", "gcc-12", "g++-12", "cpp-12"}
        self.assertEqual([n for n in names if n.endswith("-dev") or n in build_tools], [])
        compilers = self.in_image("bash", "-c", "command -v cc gcc g++ c++ ld make cmake")
        self.assertEqual(compilers.stdout.strip(), "", "compilers in the runtime image")
        self.assertEqual(self.in_image("id", "-u").stdout.strip(), str(APP_UID))
        version = self.in_image("mqtls", "--version")
        self.assertEqual(version.returncode, 0, version.stderr)

    def test_image_metadata(self):
        fields = {
            "{{.Config.User}}": f"{APP_UID}:{APP_UID}",
            "{{.Config.StopSignal}}": "SIGTERM",
            "{{json .Config.Entrypoint}}": '["/usr/bin/mqtls"]',
            "{{json .Config.Cmd}}": '["--config","/etc/mqtls/mqtls.yaml"]',
            "{{json .Config.Healthcheck.Test}}": '["CMD","/usr/lib/mqtls/healthcheck"]',
        }
        for template, expected in fields.items():
            with self.subTest(field=template):
                got = podman("image", "inspect", "--format", template, IMAGE).stdout.strip()
                self.assertEqual(got, expected)

    def test_pod_publish_readyz_rotation_and_stop(self):
        work = Path(self._work_dir())
        tag = uuid.uuid4().hex[:8]
        broker, proxy = f"mqtls-test-broker-{tag}", f"mqtls-test-proxy-{tag}"
        self.addCleanup(self._remove, broker)  # cleanups run last first: mqtls goes first
        self.addCleanup(self._remove, proxy)
        mqtt_port, admin_port = free_port(hold=False), free_port(hold=False)

        # The broker: loopback of the shared network namespace only; the namespace's ports 8883
        # (mqtls) and 9100 (its admin listener) are published on the host's loopback.
        (work / "mosquitto.conf").write_text(BROKER_CONF)
        (work / "acl").write_text(BROKER_ACL)
        podman("run", "-d", "--name", broker,
               "-p", f"127.0.0.1:{mqtt_port}:8883", "-p", f"127.0.0.1:{admin_port}:9100",
               "-v", f"{work / 'mosquitto.conf'}:/etc/mosquitto/mosquitto.conf:ro",
               "-v", f"{work / 'acl'}:/etc/mosquitto/acl:ro", BROKER_IMAGE)

        # mqtls: its configuration and certificates mounted read-only, the key readable by the
        # image's user alone.
        certs = work / "certs"
        certs.mkdir(mode=0o755)
        install(cert("server-ec.pem"), certs / "server.pem")
        install(cert("server-ec.key"), certs / "server.key", owner=APP_UID, mode=0o600)
        install(cert("ca-bundle.pem"), certs / "client-ca.pem")
        podman("run", "-d", "--name", proxy, "--network", f"container:{broker}",
               "-e", f"MQTLS_DRAIN_TIMEOUT={DRAIN_SECONDS}s",
               "-v", f"{CONTAINER_CONFIG}:/etc/mqtls/mqtls.yaml:ro",
               "-v", f"{certs}:/etc/mqtls/certs:ro", IMAGE)
        try:
            self._run_pod_checks(broker, proxy, certs, mqtt_port, admin_port)
        except BaseException:
            for name in (broker, proxy):
                sys.stderr.write(f"\n----- {name} log -----\n{self._logs(name)[-6000:]}\n")
            raise

    def _run_pod_checks(self, broker: str, proxy: str, certs: Path, mqtt_port: int,
                        admin_port: int) -> None:
        admin = f"http://127.0.0.1:{admin_port}"
        wait_until(lambda: http_get(f"{admin}/readyz")[0] == 200, timeout=30,
                   what="/readyz to answer 200")
        health = podman("healthcheck", "run", proxy, check=False)
        self.assertEqual(health.returncode, 0, f"HEALTHCHECK: {health.stdout}{health.stderr}")
        # The check can fail: nothing listens on port 1 in the container.
        broken = podman("exec", "-e", "MQTLS_ADMIN_PORT=1", proxy,
                        "/usr/lib/mqtls/healthcheck", check=False)
        self.assertNotEqual(broken.returncode, 0)

        self._publish_with_certificate_identity(broker, proxy, mqtt_port)
        self._rotate_server_certificate(proxy, certs, mqtt_port, admin)
        self._stop_within_drain_deadline(broker, proxy, mqtt_port)

    def _publish_with_certificate_identity(self, broker: str, proxy: str, port: int) -> None:
        """A device holding client.pem (CN device-001) claims the username admin; the message
        must arrive under devices/device-001/, which the broker's ACL allows only to user
        device-001, and the broker's log must name that user."""
        sub = Sub(port, "devices/#", identity="client2", client_id="watcher", count=1, wait_s=30)
        self.addCleanup(sub.kill)
        wait_until(lambda: "Received SUBSCRIBE from watcher" in self._logs(broker), timeout=20,
                   what="the subscription through mqtls")
        result = pub(port, "devices/device-001/temperature", "21.5", identity="client",
                     args=["-u", "admin", "-q", "1"])
        self.assertEqual(result.returncode, 0, result.stderr)
        code, out = sub.wait(timeout=30)
        self.assertEqual((code, out.strip()), (0, b"21.5"))
        broker_log = self._logs(broker)
        self.assertIn("u'device-001'", broker_log)
        self.assertNotIn("u'admin'", broker_log)
        wait_until(lambda: "identity=device-001" in self._logs(proxy), timeout=10,
                   what="mqtls's access line for device-001")

    def _rotate_server_certificate(self, proxy: str, certs: Path, port: int, admin: str) -> None:
        """Replaces the mounted certificate and key by another pair (the RSA one of the test
        PKI); mqtls must serve it without a restart."""
        before = served_certificate(port)
        self.assertEqual(before, harness.first_cert_der(cert("server-ec.pem")))
        started = podman("inspect", "--format", "{{.State.StartedAt}} {{.State.Pid}}",
                         proxy).stdout
        reloads = harness.parse_metrics(http_get(f"{admin}/metrics")[1]).get_value(
            "mqtls_tls_reloads_total", result="ok")
        install(cert("server-rsa.key"), certs / "server.key", owner=APP_UID, mode=0o600)
        install(cert("server-rsa.pem"), certs / "server.pem")
        rotated = harness.first_cert_der(cert("server-rsa.pem"))
        wait_until(lambda: served_certificate(port) == rotated, timeout=20,
                   what="the rotated server certificate to be served")
        after = harness.parse_metrics(http_get(f"{admin}/metrics")[1]).get_value(
            "mqtls_tls_reloads_total", result="ok")
        self.assertGreater(after, reloads)
        self.assertEqual(podman("inspect", "--format", "{{.State.StartedAt}} {{.State.Pid}}",
                                proxy).stdout, started, "mqtls restarted")

    def _stop_within_drain_deadline(self, broker: str, proxy: str, port: int) -> None:
        """With a client still connected, podman stop (SIGTERM) returns after the drain, well
        before its own kill deadline, and the container exits 0."""
        sub = Sub(port, "devices/#", identity="client2", client_id="lingering", count=0,
                  wait_s=0)
        self.addCleanup(sub.kill)
        wait_until(lambda: "Received SUBSCRIBE from lingering" in self._logs(broker),
                   timeout=20, what="the lingering client's subscription")
        kill_after = DRAIN_SECONDS + 20
        start = time.monotonic()
        podman("stop", "--time", str(kill_after), proxy, timeout=kill_after + 30)
        elapsed = time.monotonic() - start
        state = podman("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}",
                       proxy).stdout.split()
        self.assertEqual(state, ["0", "false"], self._logs(proxy)[-2000:])
        self.assertLess(elapsed, DRAIN_SECONDS + 5, f"podman stop took {elapsed:.1f} s")
        sys.stderr.write(f"podman stop: {elapsed:.1f} s (drain_timeout {DRAIN_SECONDS} s)\n")

    def _remove(self, container: str) -> None:
        """Removes a container of the test, saying so if that fails."""
        result = podman("rm", "--force", "--ignore", "--time", "0", container, check=False)
        if result.returncode != 0:
            sys.stderr.write(f"podman rm {container}: {result.stderr}\n")

    def _logs(self, container: str) -> str:
        result = podman("logs", container, check=False)
        return result.stdout + result.stderr

    def _work_dir(self) -> str:
        work = tempfile.mkdtemp(prefix="mqtls-container-")
        os.chmod(work, 0o755)
        self.addCleanup(shutil.rmtree, work, True)
        return work


if __name__ == "__main__":
    unittest.main()

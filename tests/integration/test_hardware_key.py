"""The server private key on a PKCS#11 token: a SoftHSM2 token made in a temporary directory
(its own SOFTHSM2_CONF) holds the test PKI's server keys; mqtls names them by RFC 7512 URI
through the pkcs11 engine, real clients handshake (the token signs) and publish through it, and
mqtls --check reports a missing token, a missing key, a wrong or absent PIN at the 'key'
setting's file:line:col without ever printing the PIN.

Needs softhsm2 and libengine-pkcs11-openssl (scripts/setup.sh installs them). Without them every
test is skipped with the reason, and the script exits 77, which ctest shows as skipped."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from harness import CA_BUNDLE, IntegrationTest, cert, free_port, pub, run_mqtls

PIN = "20481632"
SO_PIN = "87654321"
TOKEN = "mqtls test"  # a space: the URI carries it %-escaped
MODULE_CANDIDATES = ["/usr/lib/softhsm/libsofthsm2.so",
                     "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]


def softhsm_problem() -> str | None:
    """Why a SoftHSM2 token cannot be used through the pkcs11 engine here, or None."""
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util not found (Debian package softhsm2)"
    if not any(os.path.exists(m) for m in MODULE_CANDIDATES):
        return f"the SoftHSM2 PKCS#11 module is in none of {MODULE_CANDIDATES}"
    probe = subprocess.run(["openssl", "engine", "-t", "pkcs11"], capture_output=True, text=True)
    if probe.returncode != 0 or "[ available ]" not in probe.stdout:
        return ("OpenSSL cannot load the pkcs11 engine (Debian package libengine-pkcs11-openssl): "
                + (probe.stderr.strip() or probe.stdout.strip()))
    return None


PROBLEM = softhsm_problem()
MODULE = next((m for m in MODULE_CANDIDATES if os.path.exists(m)), "")

CONFIG = """\
workers: 2
listeners:
  - name: hsm
    bind: 127.0.0.1
    port: {port}
    tls:
      cert: {cert}
      key: "{key}"
{pin_file}      client_ca: {ca}
upstream:
  port: {upstream}
"""
KEY_LINE = 8  # the line of 'key:' in CONFIG
KEY_COLUMN = 12  # where its value starts


def uri(token: str = TOKEN, obj: str = "server-ec", query: str = "") -> str:
    label = token.replace(" ", "%20")
    return (f"pkcs11:token={label};object={obj};type=private?module-path={MODULE}"
            + (f"&{query}" if query else ""))


@unittest.skipIf(PROBLEM is not None, f"no PKCS#11 token available: {PROBLEM}")
class HardwareKeyTest(IntegrationTest):
    @classmethod
    def setUpClass(cls):
        """One token for the class, holding the EC and the RSA server keys."""
        cls.token_dir = Path(tempfile.mkdtemp(prefix="mqtls-softhsm-"))
        (cls.token_dir / "tokens").mkdir()
        conf = cls.token_dir / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {cls.token_dir / 'tokens'}\n"
                        "objectstore.backend = file\nlog.level = ERROR\n")
        cls.saved_conf = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # inherited by mqtls
        cls.softhsm("--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN)
        for number, name in enumerate(["server-ec", "server-rsa"], start=1):
            cls.softhsm("--import", cert(f"{name}.key"), "--token", TOKEN, "--label", name,
                        "--id", f"{number:02x}", "--pin", PIN)
        cls.pin_file = cls.token_dir / "pin"
        cls.pin_file.write_text(PIN + "\n")

    @classmethod
    def tearDownClass(cls):
        if cls.saved_conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = cls.saved_conf
        shutil.rmtree(cls.token_dir, ignore_errors=True)

    @staticmethod
    def softhsm(*args: str) -> None:
        result = subprocess.run(["softhsm2-util", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"softhsm2-util {args[0]}: {result.stdout}{result.stderr}")

    def write_config(self, key: str, pin_file: str | None = None, name: str = "hsm",
                     server: str = "server-ec", upstream: int = 1883) -> tuple[Path, int]:
        """Writes CONFIG; returns its path and the listener port."""
        port = free_port()
        path = self.workdir / f"{name}.yaml"
        pin_line = f"      pin_file: {pin_file}\n" if pin_file else ""
        path.write_text(CONFIG.format(port=port, cert=cert(f"{server}.pem"), key=key,
                                      pin_file=pin_line, ca=CA_BUNDLE, upstream=upstream))
        return path, port

    def check_error(self, key: str, pin_file: str | None = None) -> str:
        """Runs mqtls --check on a config with this key; asserts it fails with one error at the
        key setting and returns that error's message."""
        path, _ = self.write_config(key, pin_file)
        # The pkcs11 engine leaves its RSA/EC method tables allocated when a key fails to load
        # (770 bytes, inside libcrypto and the engine, not mqtls); a sanitizer build's leak check
        # at exit would count them. Leak checking stays on for every other run.
        saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "detect_leaks=0"
        try:
            result = run_mqtls("--check", "--config", str(path), expected_exit=2)
        finally:
            if saved is None:
                os.environ.pop("ASAN_OPTIONS", None)
            else:
                os.environ["ASAN_OPTIONS"] = saved
        prefix = f"{path}:{KEY_LINE}:{KEY_COLUMN}: listeners[0].tls.key: "
        lines = [line for line in result.stderr.splitlines() if line.startswith(f"{path}:")]
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith(prefix), lines[0])
        self.assertNotIn(PIN, result.stdout + result.stderr)
        return lines[0][len(prefix):]

    def publish_through(self, server: str) -> None:
        """mqtls with `server`'s key on the token: --check passes, a subscriber and a publisher
        (both verifying the server, so the token's signature) exchange a message."""
        broker = self.start_broker()
        path, port = self.write_config(uri(obj=server), str(self.pin_file), server=server,
                                       upstream=broker.port)
        check = run_mqtls("--check", "--config", str(path), expected_exit=0)
        self.assertIn("configuration ok", check.stdout + check.stderr)
        proxy = self.start_proxy(path.read_text(), name=f"mqtls-{server}")
        proxy.port = port
        topic = f"devices/device-001/{server}"
        start = len(broker.log())
        sub = self.start_sub(port, topic, identity="client2", client_id=f"sub-{server}")
        broker.wait_subscribed(f"sub-{server}", start=start)
        result = pub(port, topic, f"signed by the token ({server})",
                     args=["-i", f"pub-{server}"])
        self.assertEqual(result.returncode, 0, result.stderr)
        code, out = sub.wait()
        self.assertEqual(code, 0, sub.stderr)
        self.assertEqual(out, f"signed by the token ({server})\n".encode())
        self.assertEqual(dict(broker.connected_clients(start)).get(f"pub-{server}"), "device-001")
        self.assertNotIn(PIN, proxy.log())

    def test_ec_key_on_the_token_serves_clients(self):
        self.publish_through("server-ec")

    def test_rsa_key_on_the_token_serves_clients(self):
        # TLS 1.3 with RSA: the token makes RSA-PSS signatures.
        self.publish_through("server-rsa")

    def test_missing_token_is_named(self):
        message = self.check_error(uri(token="no such token"), str(self.pin_file))
        self.assertIn("no PKCS#11 token matches 'pkcs11:token=no%20such%20token'", message)
        self.assertIn("--list-token-slots", message)

    def test_missing_key_is_named(self):
        message = self.check_error(uri(obj="no-such-key"), str(self.pin_file))
        self.assertIn(f"the token '{TOKEN}' holds no private key matching", message)
        self.assertIn("object=no-such-key", message)

    def test_wrong_pin_is_refused_and_never_printed(self):
        wrong = self.workdir / "wrong-pin"
        wrong.write_text("1111\n")
        message = self.check_error(uri(), str(wrong))
        self.assertIn("the token refused the PIN", message)
        self.assertIn("PIN incorrect", message)
        # The same PIN in the URI itself is shown as ***.
        message = self.check_error(uri(query="pin-value=99119911"))
        self.assertIn("the token refused the PIN", message)
        self.assertIn("pin-value=***", message)
        self.assertNotIn("99119911", message)

    def test_absent_pin_says_how_to_give_it(self):
        message = self.check_error(uri())
        self.assertIn("the token needs a PIN", message)
        self.assertIn("pin_file", message)

    def test_unreadable_pin_file_is_named(self):
        missing = self.workdir / "no-pin-here"
        message = self.check_error(uri(), str(missing))
        self.assertIn(f"cannot read the PIN file '{missing}'", message)

    def test_pin_file_with_a_key_file_is_an_error_at_pin_file(self):
        path, _ = self.write_config(cert("server-ec.key"), str(self.pin_file))
        result = run_mqtls("--check", "--config", str(path), expected_exit=2)
        self.assertRegex(result.stderr, rf"{re.escape(str(path))}:9:17: listeners\[0\]\.tls\."
                                        r"pin_file: pin_file is only used with a key on a PKCS#11")


def main() -> int:
    result = unittest.main(exit=False, verbosity=2).result
    if result.testsRun and len(result.skipped) == result.testsRun:
        print(f"SKIPPED: {PROBLEM}", file=sys.stderr)
        return 77  # ctest: SKIP_RETURN_CODE
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

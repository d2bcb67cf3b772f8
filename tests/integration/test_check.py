"""mqtls --check finds every problem in one run: configuration mistakes and TLS material that
OpenSSL refuses (a key that does not belong to its certificate, a cipher list) are reported
together, each as file:line:col; crl_check: chain without a CRL is an error; a CRL past its
nextUpdate is a warning that names the file and does not fail the check."""

import re
import time
import unittest

import mqtt5
from harness import CA_BUNDLE, IntegrationTest, cert, free_port, run_mqtls

CONFIG = """\
workers: 1
log:
  level: {level}
listeners:
  - name: a
    bind: 127.0.0.1
    port: {port}
    tls:
      cert: {cert}
      key: {key}
      client_ca: {ca}
      ciphers: "{ciphers}"
{tls_extra}upstream:
  port: 1883
"""


class CheckTest(IntegrationTest):
    def check(self, name="mqtls", level="info", key="server-ec.key", ciphers="",
              tls_extra=""):
        """Writes CONFIG with these values and runs mqtls --check on it; returns (the config
        path, the result)."""
        path = self.workdir / f"{name}.yaml"
        path.write_text(CONFIG.format(level=level, port=free_port(), cert=cert("server-ec.pem"),
                                      key=cert(key), ca=CA_BUNDLE, ciphers=ciphers,
                                      tls_extra=tls_extra))
        return path, run_mqtls("--check", "--config", str(path))

    def errors(self, path, result):
        """{(line, key path): message} of the 'file:line:col: key: message' lines on stderr;
        fails on such a line without a column."""
        pattern = re.compile(rf"^{re.escape(str(path))}:(\d+):(\d+): (\S+): (.+)$")
        found = {}
        for line in result.stderr.splitlines():
            if not line.startswith(f"{path}:"):
                continue
            match = pattern.match(line)
            self.assertIsNotNone(match, f"not 'file:line:col: key: problem': {line}")
            self.assertGreater(int(match.group(2)), 0, line)
            found[(int(match.group(1)), match.group(3))] = match.group(4)
        return found

    def test_config_and_tls_errors_are_reported_together(self):
        path, result = self.check(level="loud", key="server-mismatch.key",
                                  ciphers="NOT-A-CIPHER")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertNotIn("configuration ok", result.stdout + result.stderr)
        errors = self.errors(path, result)
        self.assertEqual(sorted(errors), [(3, "log.level"), (10, "listeners[0].tls.key"),
                                          (12, "listeners[0].tls.ciphers")], result.stderr)
        self.assertIn("does not match", errors[(10, "listeners[0].tls.key")])

    def test_mismatched_server_key_names_the_key(self):
        path, result = self.check(key="server-mismatch.key")
        self.assertEqual(result.returncode, 2, result.stderr)
        errors = self.errors(path, result)
        self.assertEqual(list(errors), [(10, "listeners[0].tls.key")], result.stderr)
        self.assertIn("does not match", errors[(10, "listeners[0].tls.key")])
        # mqtls without --check refuses to start on the same file, with the same error.
        started = run_mqtls("--config", str(path))
        self.assertEqual(started.returncode, 2, started.stderr)
        self.assertEqual(self.errors(path, started), errors)

    def test_rejected_cipher_list(self):
        path, result = self.check(ciphers="NOT-A-CIPHER")
        self.assertEqual(result.returncode, 2, result.stderr)
        errors = self.errors(path, result)
        self.assertEqual(list(errors), [(12, "listeners[0].tls.ciphers")], result.stderr)
        self.assertIn("NOT-A-CIPHER", errors[(12, "listeners[0].tls.ciphers")])

    def test_crl_check_chain_needs_a_crl(self):
        path, result = self.check(tls_extra="      crl_check: chain\n")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertEqual(list(self.errors(path, result)), [(13, "listeners[0].tls.crl_check")],
                         result.stderr)
        # With the CRLs of the whole chain it is fine.
        crl = f"      crl: [{cert('crl-chain.pem')}]\n"
        path, result = self.check("with-crl", tls_extra="      crl_check: chain\n" + crl)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration ok", result.stdout)

    def test_crl_past_next_update_is_a_warning(self):
        stale = mqtt5.TestCa(self.workdir / "ca").crl("stale-crl", 1)
        time.sleep(2.5)  # past its nextUpdate
        path, result = self.check(tls_extra=f"      crl: [{stale}]\n")
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, output)
        self.assertIn("configuration ok", result.stdout)
        warnings = [line for line in output.splitlines() if re.search("warn", line, re.I)]
        self.assertTrue(any(stale in line for line in warnings),
                        f"no warning naming {stale}: {output}")
        # A current CRL gives no warning.
        path, result = self.check("fresh", tls_extra=f"      crl: [{cert('crl.pem')}]\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotRegex(result.stdout + result.stderr, "(?i)warn")


if __name__ == "__main__":
    unittest.main()

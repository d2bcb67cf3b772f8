"""Revocation without restarts: a CRL directory (DER files dropped in and removed) revokes and
restores a client within seconds while another client keeps working; a CRL past its nextUpdate
refuses clients under crl_next_update strict (reason crl_expired in the access log and the
metric) and lets them in under lenient (counted); and the server's OCSP response is stapled to
clients that ask (openssl s_client -status), a replaced response file served without restart."""

import datetime
import os
import shutil
import subprocess
import unittest

import mqtt5
from harness import CA_BUNDLE, IntegrationTest, cert, run_mqtls, wait_until


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class RevocationTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.ca = mqtt5.TestCa(self.workdir / "ca")

    def start(self, **tls):
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"].update(tls)
        return self.start_proxy(config)


    def drop(self, source, directory, name):
        """Moves source into directory as name in one rename, as a deployment tool would."""
        staged = directory.parent / f".{name}.tmp"
        shutil.copyfile(source, staged)
        os.replace(staged, directory / name)

    # CRL directory ------------------------------------------------------------------------

    def test_crl_dropped_into_a_directory_revokes_without_restart(self):
        doomed = self.ca.client("doomed", "device-doomed", now() + datetime.timedelta(days=1))
        kept = (cert("client.pem"), cert("client.key"))
        crl_dir = self.workdir / "crl.d"
        crl_dir.mkdir()
        first = self.ca.crl_der("crl-0", now() - datetime.timedelta(minutes=3),
                                now() + datetime.timedelta(hours=1))
        self.drop(first, crl_dir, "intermediate-0.der")
        proxy = self.start(crl=[str(crl_dir)])
        self.assertTrue(mqtt5.admitted(proxy.port, doomed, "doomed"))
        self.assertTrue(mqtt5.admitted(proxy.port, kept, "kept"))

        self.ca._ca("-revoke", doomed[0])
        newer = self.ca.crl_der("crl-1", now() - datetime.timedelta(minutes=1),
                                now() + datetime.timedelta(hours=1))
        self.drop(newer, crl_dir, "intermediate-1.der")  # a new file, the old one stays
        wait_until(lambda: not mqtt5.admitted(proxy.port, doomed, "doomed"), timeout=10,
                   interval=0.3, what="the revoked client to be refused")
        proxy.wait_access(close="handshake_failed",
                          detail="revoked: certificate verify failed: certificate revoked")
        self.assertTrue(mqtt5.admitted(proxy.port, kept, "kept"), "the other client was refused")

        os.remove(crl_dir / "intermediate-1.der")  # removing it undoes the revocation
        wait_until(lambda: mqtt5.admitted(proxy.port, doomed, "doomed"), timeout=10,
                   interval=0.3, what="the client to be admitted after the CRL was removed")
        self.assertTrue(proxy.running())

    def test_a_file_in_the_directory_that_is_not_a_crl_keeps_the_previous_context(self):
        crl_dir = self.workdir / "crl.d"
        crl_dir.mkdir()
        self.drop(self.ca.crl_der("crl-0", now() - datetime.timedelta(minutes=1),
                                  now() + datetime.timedelta(hours=1)), crl_dir, "ca.der")
        proxy = self.start(crl=[str(crl_dir)])
        (crl_dir / "notes.txt").write_text("not a CRL\n")
        proxy.wait_metric("mqtls_tls_reloads_total", result="failed")
        proxy.wait_for_log(r"tls\.crl\[0\]: .*notes\.txt' holds neither PEM CRLs nor a DER CRL")
        self.assertTrue(mqtt5.admitted(proxy.port, (cert("client.pem"), cert("client.key")), "c"))

    # nextUpdate policy --------------------------------------------------------------------

    def stale_crl(self):
        path = self.workdir / "stale.der"
        shutil.copyfile(self.ca.crl_der("stale", now() - datetime.timedelta(hours=2),
                                        now() - datetime.timedelta(hours=1)), path)
        return str(path)

    def test_stale_crl_strict_refuses_with_reason_crl_expired(self):
        proxy = self.start(crl=[self.stale_crl()])
        proxy.wait_for_log(r"past its nextUpdate .*are refused \(CRL has expired\)")
        self.assertFalse(mqtt5.admitted(proxy.port, (cert("client.pem"), cert("client.key")), "c"))
        proxy.wait_metric("mqtls_tls_handshake_failures_total", reason="crl_expired")
        record = proxy.wait_access(close="handshake_failed")
        self.assertIn("crl_expired", record.get("detail", ""))
        self.assertEqual(proxy.metric("mqtls_tls_stale_crl_accepted_total"), 0)

    def test_stale_crl_lenient_accepts_counts_and_still_revokes(self):
        doomed = self.ca.client("doomed", "device-doomed", now() + datetime.timedelta(days=1))
        self.ca._ca("-revoke", doomed[0])
        proxy = self.start(crl=[self.stale_crl()], crl_next_update="lenient")
        proxy.wait_for_log(r"past its nextUpdate .*still accepted \(crl_next_update lenient")
        files = (cert("client.pem"), cert("client.key"))
        self.assertTrue(mqtt5.admitted(proxy.port, files, "c1"))
        self.assertTrue(mqtt5.admitted(proxy.port, files, "c2"))
        self.assertEqual(proxy.wait_metric("mqtls_tls_stale_crl_accepted_total", at_least=2,
                                           listener="mqtts"), 2)
        self.assertFalse(mqtt5.admitted(proxy.port, doomed, "doomed"),
                         "a certificate listed in a stale CRL was accepted")
        proxy.wait_access(close="handshake_failed",
                          detail="revoked: certificate verify failed: certificate revoked")

    # OCSP stapling ------------------------------------------------------------------------

    def s_client_status(self, port):
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
             "-status", "-CAfile", CA_BUNDLE, "-cert", cert("client.pem"), "-key",
             cert("client.key")], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)
        return result.stdout

    def test_staple_is_served_and_a_replaced_file_is_picked_up(self):
        staple = self.workdir / "server.ocsp"
        os.replace(self.ca.ocsp_response("good", cert("server-ec.pem")), staple)
        proxy = self.start(ocsp_staple=str(staple))
        out = self.s_client_status(proxy.port)
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)

        os.replace(self.ca.ocsp_response("revoked", cert("server-ec.pem"), revoked=True), staple)
        wait_until(lambda: "Cert Status: revoked" in self.s_client_status(proxy.port),
                   timeout=10, interval=0.3, what="the replaced OCSP response to be served")
        self.assertEqual(proxy.metric("mqtls_tls_reloads_total", result="failed"), 0)

    def test_without_a_staple_none_is_sent(self):
        proxy = self.start()
        self.assertIn("OCSP response: no response sent", self.s_client_status(proxy.port))

    def test_check_names_a_broken_staple_file(self):
        staple = self.workdir / "broken.ocsp"
        staple.write_bytes(b"not DER")
        config = self.proxy_config(self.broker.port)
        config["listeners"][0]["tls"]["ocsp_staple"] = str(staple)
        path = self.workdir / "check.yaml"
        path.write_text(mqtt5.harness.to_yaml(config))
        result = run_mqtls("--check", "--config", str(path))
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertRegex(output, rf"{path}:\d+:\d+: .*'{staple}' holds no DER OCSP response; "
                                 r"point 'ocsp_staple' at")


if __name__ == "__main__":
    unittest.main()

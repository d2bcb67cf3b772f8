"""The Debian package: cpack builds it from the build tree, apt-get installs it on this machine,
the shipped /etc/mqtls/mqtls.yaml passes `mqtls --check` (as root and as the mqtls user), the
configuration is a conffile, the systemd unit is installed but neither enabled nor started, and
`apt-get purge` removes the binary, the unit, the configuration, the placeholder certificates and
the mqtls user, while a file the operator added stays.

This changes the machine (it installs a package): ctest runs it alone (RUN_SERIAL), and it
refuses to run where a package, user or configuration named mqtls already exists.

Environment (set by ctest): MQTLS_BUILD_DIR (holds CPackConfig.cmake), MQTLS_CPACK,
MQTLS_SYSTEMD_ANALYZE.
"""

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MQTLS_BUILD_DIR") or SOURCE_DIR / "build")
CPACK = os.environ.get("MQTLS_CPACK") or "cpack"
ANALYZE = os.environ.get("MQTLS_SYSTEMD_ANALYZE") or "systemd-analyze"
BIN = Path("/usr/bin/mqtls")
CONFIG = Path("/etc/mqtls/mqtls.yaml")
CERTS = Path("/etc/mqtls/certs")
UNIT = Path("/lib/systemd/system/mqtls.service")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/mqtls.service")
# deb-systemd-helper's record of the unit, kept from install to purge.
DSH_STATE = Path("/var/lib/systemd/deb-systemd-helper-enabled/mqtls.service.dsh-also")
# Libraries dpkg-shlibdeps must have found (a prefix of each package name), and what the
# maintainer scripts need.
EXPECTED_DEPENDS = ["libssl3", "libevent-", "libyaml-cpp", "libprometheus-cpp-", "libc6",
                    "adduser", "openssl"]
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def run(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=150, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {result.returncode}\n{result.stdout[-3000:]}"
                             f"\n{result.stderr[-3000:]}")
    return result


def package_status() -> str:
    """dpkg's status of mqtls; "" when dpkg knows no trace of it (never installed, or purged)."""
    result = run("dpkg-query", "-W", "-f=${Status}", "mqtls", check=False)
    status = result.stdout.strip() if result.returncode == 0 else ""
    return "" if status.endswith(" not-installed") else status


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


class PackageTest(unittest.TestCase):
    def setUp(self):
        # Never clobber an mqtls this test did not install.
        problems = []
        if package_status() not in ("", "deinstall ok config-files"):
            problems.append(f"package mqtls is installed ({package_status()})")
        if package_status() == "deinstall ok config-files":
            problems.append("package mqtls was removed but not purged")
        if user_exists("mqtls") or group_exists("mqtls"):
            problems.append("a user or group named mqtls exists")
        if Path("/etc/mqtls").exists() or BIN.exists():
            problems.append("/etc/mqtls or /usr/bin/mqtls exists")
        if problems:
            self.fail("refusing to install the package over an existing mqtls: "
                      + "; ".join(problems) + " (run this test on a machine without mqtls)")
        if os.geteuid() != 0:
            self.fail("installing the package needs root (CI runs the suite as root)")
        self.tmp = Path(tempfile.mkdtemp(prefix="mqtls-deb-"))
        os.chmod(self.tmp, 0o755)  # apt's sandbox user reads the .deb
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(self.purge_leftovers)

    def purge_leftovers(self):
        """Leaves the machine as setUp found it, whatever the package failed to remove (none of
        these existed before the test)."""
        if package_status():
            run("apt-get", "purge", "-y", "mqtls", check=False, env=APT_ENV)
        shutil.rmtree("/etc/mqtls", ignore_errors=True)
        if user_exists("mqtls"):
            run("userdel", "mqtls", check=False)
        if group_exists("mqtls"):
            run("groupdel", "mqtls", check=False)

    def build_package(self) -> Path:
        config = BUILD_DIR / "CPackConfig.cmake"
        self.assertTrue(config.exists(), f"{config}: configure the build first")
        run(CPACK, "-G", "DEB", "--config", str(config), "-B", str(self.tmp))
        debs = sorted(self.tmp.glob("mqtls_*.deb"))
        self.assertEqual(len(debs), 1, f"packages made: {list(self.tmp.iterdir())}")
        return debs[0]

    def check_contents(self, deb: Path):
        fields = {name: run("dpkg-deb", "-f", str(deb), name).stdout.strip()
                  for name in ("Package", "Version", "Maintainer", "Description", "Depends")}
        self.assertEqual(fields["Package"], "mqtls")
        self.assertRegex(fields["Version"], r"^\d+\.\d+\.\d+")
        self.assertTrue(fields["Maintainer"])
        self.assertIn("MQTT", fields["Description"])
        depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
        for wanted in EXPECTED_DEPENDS:
            self.assertTrue(any(d.startswith(wanted) for d in depends),
                            f"Depends lacks {wanted}: {fields['Depends']}")
        files = run("dpkg-deb", "-c", str(deb)).stdout
        for path in (BIN, CONFIG, UNIT, Path("/usr/share/doc/mqtls/README.md"),
                     Path("/usr/share/doc/mqtls/mqtls.example.yaml")):
            self.assertIn(f".{path}\n", files)
        control = self.tmp / "control"
        run("dpkg-deb", "-e", str(deb), str(control))
        self.assertEqual((control / "conffiles").read_text().split(), [str(CONFIG)])

    def check_installed(self):
        self.assertEqual(package_status(), "install ok installed")
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mqtls").stdout
        self.assertIn(str(CONFIG), conffiles)
        self.assertTrue(os.access(BIN, os.X_OK))
        self.assertEqual(UNIT.read_text(),
                         (SOURCE_DIR / "deploy" / "systemd" / "mqtls.service").read_text())

        user = pwd.getpwnam("mqtls")
        self.assertLess(user.pw_uid, 1000, "mqtls should be a system user")
        self.assertTrue(user.pw_shell.endswith(("nologin", "false")), user.pw_shell)
        key = CERTS / "server.key"
        self.assertEqual(key.stat().st_mode & 0o777, 0o640)
        self.assertEqual(grp.getgrgid(key.stat().st_gid).gr_name, "mqtls")

        check = run(str(BIN), "--check", "--config", str(CONFIG), check=False)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        as_user = run("runuser", "-u", "mqtls", "--", str(BIN), "--check", "--config",
                      str(CONFIG), check=False)
        self.assertEqual(as_user.returncode, 0, as_user.stdout + as_user.stderr)

        verify = run(ANALYZE, "verify", str(UNIT), check=False)
        self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))

        # Installed, not enabled, not started.
        self.assertFalse(WANTS.exists() or WANTS.is_symlink(), f"{WANTS} exists")
        if Path("/run/systemd/system").is_dir():
            self.assertEqual(run("systemctl", "is-enabled", "mqtls", check=False)
                             .stdout.strip(), "disabled")
            self.assertNotEqual(run("systemctl", "is-active", "mqtls", check=False)
                                .stdout.strip(), "active")
        running = run("pgrep", "-x", "mqtls", "-u", "mqtls", check=False)
        self.assertNotEqual(running.returncode, 0, f"mqtls is running: {running.stdout}")

    def test_build_install_check_purge(self):
        deb = self.build_package()
        self.check_contents(deb)
        run("apt-get", "install", "-y", "--no-install-recommends", str(deb), env=APT_ENV)
        self.check_installed()
        self.assertTrue(DSH_STATE.exists(), f"{DSH_STATE}: unit not registered")

        # The configuration is a conffile: an operator's edit survives a reinstall (an
        # upgrade), and postinst neither remakes the placeholders nor fails the second time.
        placeholders = (CERTS / ".placeholders").read_text()
        edited = CONFIG.read_text() + "# edited by the operator\n"
        CONFIG.write_text(edited)
        run("apt-get", "install", "-y", "--reinstall", "-o", "Dpkg::Options::=--force-confold",
            str(deb), env=APT_ENV)
        self.assertEqual(CONFIG.read_text(), edited)
        self.assertEqual((CERTS / ".placeholders").read_text(), placeholders)
        self.check_installed()

        # A file the operator put beside the placeholders survives the purge.
        own = CERTS / "devices-ca.pem"
        own.write_text("operator's file\n")

        run("apt-get", "purge", "-y", "mqtls", env=APT_ENV)
        self.assertEqual(package_status(), "")
        for path in (BIN, CONFIG, UNIT, CERTS / "server.pem", CERTS / "server.key",
                     CERTS / "client-ca.pem", CERTS / ".placeholders"):
            self.assertFalse(path.exists(), f"{path} left after purge")
        self.assertFalse(user_exists("mqtls"), "user mqtls left after purge")
        self.assertFalse(group_exists("mqtls"), "group mqtls left after purge")
        self.assertFalse(DSH_STATE.exists(), f"{DSH_STATE} left after purge")
        self.assertEqual(own.read_text(), "operator's file\n")


if __name__ == "__main__":
    unittest.main()

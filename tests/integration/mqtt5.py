"""Helpers for the identity, session, stamping and --check tests, on top of harness.py: the
forged-key TLS client (tests/tools), certificates and CRLs issued on the fly by the test CA,
TLS clients holding such certificates (with session resumption), and mosquitto_sub output with
MQTT 5 user properties.

Environment (besides harness.py's):
  MQTLS_TOOLS_DIR  where tests/tools was built (default: tests/tools next to MQTLS_BIN's build)
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
from pathlib import Path

import harness
from harness import CA_BUNDLE, WAIT, RawClient, cert

TOOLS_DIR = os.environ.get("MQTLS_TOOLS_DIR") or str(
    Path(harness.MQTLS_BIN).resolve().parents[1] / "tests" / "tools")


def forged_key_client(port: int, chain: str, signing_key: str,
                      version: str | None = None) -> subprocess.CompletedProcess:
    """Runs tests/tools/forged_key_client: a TLS client presenting chain but signing its
    CertificateVerify with signing_key, then sending a CONNECT. stdout is one line ("connack N",
    "handshake_failed ...", "closed ..." or "error ..."), returncode 0, 1, 2 or 3 accordingly."""
    argv = [os.path.join(TOOLS_DIR, "forged_key_client"), "127.0.0.1", str(port), CA_BUNDLE,
            chain, signing_key]
    if version:
        argv.append(version)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# ----------------------------------------------------------------------------------------------
# A throwaway CA database over the test PKI's intermediate CA

CA_CONFIG = """\
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
crlnumber = {dir}/crlnumber
default_md = sha256
policy = policy_anything
unique_subject = no
copy_extensions = none
preserve = yes
[ policy_anything ]
organizationName = optional
commonName = optional
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ v3_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://mqtls.test/device/{cn}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""


def asn1_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%SZ")


class TestCa:
    """Issues certificates and CRLs from the test PKI's intermediate CA, with its own database
    in directory (so the shared PKI is never written to)."""

    def __init__(self, directory: Path, cn: str = "device-short"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "crlnumber").write_text("1000\n")
        self.config = self.dir / "ca.cnf"
        self.config.write_text(CA_CONFIG.format(dir=self.dir, cn=cn))

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "OPENSSL_CONF": str(self.config)})
        if result.returncode != 0:
            raise AssertionError(f"openssl {args[0]} failed: {result.stderr}")

    def _ca(self, *args: str) -> None:
        self._openssl("ca", "-config", str(self.config), "-batch", "-notext",
                      "-cert", cert("intermediate-ca.pem"),
                      "-keyfile", cert("intermediate-ca.key"), *args)

    def client(self, name: str, cn: str, not_after: datetime.datetime) -> tuple[str, str]:
        """A client certificate for CN cn valid from a minute ago until not_after: returns
        (chain path, key path), the chain holding the leaf and the intermediate."""
        key, csr, leaf = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "leaf"))
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(key))
        self._openssl("req", "-new", "-config", str(self.config), "-key", str(key),
                      "-subj", f"/O=mqtls test/CN={cn}", "-out", str(csr))
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
        self._ca("-rand_serial", "-extensions", "v3_client", "-in", str(csr), "-out", str(leaf),
                 "-startdate", asn1_time(start), "-enddate", asn1_time(not_after))
        chain = self.dir / f"{name}.pem"
        chain.write_text(leaf.read_text() + Path(cert("intermediate-ca.pem")).read_text())
        return str(chain), str(key)

    def crl(self, name: str, seconds: int) -> str:
        """An empty CRL whose nextUpdate is seconds from now; returns its path."""
        out = self.dir / f"{name}.pem"
        self._ca("-gencrl", "-crlsec", str(seconds), "-crlexts", "crl_ext", "-out", str(out))
        return str(out)


# ----------------------------------------------------------------------------------------------
# TLS clients with any certificate, and session resumption


def context_for(chain: str | None, key: str | None,
                version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client context presenting chain/key (None: no certificate), pinned to version if
    given. Keep the context: a session can only be resumed through the context that made it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    context.load_verify_locations(CA_BUNDLE)
    if chain:
        context.load_cert_chain(chain, key)
    if version:
        context.minimum_version = context.maximum_version = version
    return context


def raw_client(port: int, context: ssl.SSLContext,
               session: ssl.SSLSession | None = None) -> RawClient:
    """A harness RawClient over a TLS connection made with context (and session, to resume).
    Raises ssl.SSLError when the handshake fails."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        sock = context.wrap_socket(raw, server_hostname="localhost", session=session,
                                   suppress_ragged_eofs=False)
    except BaseException:
        raw.close()
        raise
    client = RawClient.__new__(RawClient)
    client.sock, client.buffer, client.close_error = sock, b"", None
    return client


# ----------------------------------------------------------------------------------------------
# mosquitto_sub output with user properties

# One message per line: the user properties (%P: "key:value" pairs separated by spaces), a
# separator that no property or payload here contains, then the payload.
PROPS_FORMAT = "%P|%p"


def parse_props_line(line: str) -> tuple[list[tuple[str, str]], str]:
    """([(key, value), ...], payload) of one line printed with PROPS_FORMAT."""
    props_text, _, payload = line.rpartition("|")
    props = []
    for item in props_text.split(" ") if props_text else []:
        key, _, value = item.partition(":")
        props.append((key, value))
    return props, payload

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

    def crl_der(self, name: str, last_update: datetime.datetime,
                next_update: datetime.datetime) -> str:
        """A DER CRL of the revocations so far, with the given lastUpdate and nextUpdate (either
        may lie in the past); returns its path."""
        pem, der = self.dir / f"{name}.crl.pem", self.dir / f"{name}.der"
        self._ca("-gencrl", "-crl_lastupdate", asn1_time(last_update),
                 "-crl_nextupdate", asn1_time(next_update), "-crlexts", "crl_ext",
                 "-out", str(pem))
        self._openssl("crl", "-in", str(pem), "-outform", "DER", "-out", str(der))
        return str(der)

    def ocsp_response(self, name: str, leaf: str, revoked: bool = False,
                      minutes: int = 60) -> str:
        """A DER OCSP response signed by the intermediate about the first certificate of leaf
        (good, or revoked), valid for minutes; returns its path. Uses a database of its own."""
        serial = subprocess.run(["openssl", "x509", "-in", leaf, "-noout", "-serial"],
                                capture_output=True, text=True, check=True).stdout
        subject = subprocess.run(["openssl", "x509", "-in", leaf, "-noout", "-subject",
                                  "-nameopt", "compat"], capture_output=True, text=True,
                                 check=True).stdout
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%y%m%d%H%M%SZ")
        status, when = ("R", now) if revoked else ("V", "")
        index = self.dir / f"{name}.index.txt"
        index.write_text(f"{status}\t491231235959Z\t{when}\t{serial.strip().split('=')[1]}"
                         f"\tunknown\t{subject.strip().removeprefix('subject=')}\n")
        out = self.dir / f"{name}.der"
        self._openssl("ocsp", "-index", str(index), "-CA", cert("intermediate-ca.pem"),
                      "-rsigner", cert("intermediate-ca.pem"), "-rkey", cert("intermediate-ca.key"),
                      "-issuer", cert("intermediate-ca.pem"), "-cert", leaf, "-no_nonce",
                      "-nmin", str(minutes), "-respout", str(out))
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


def admitted(port: int, files: tuple[str, str], client_id: str) -> bool:
    """True if a fresh TLS connection (no session to resume) with files (chain, key) gets a
    successful CONNACK; False if the handshake or the connection fails."""
    try:
        client = raw_client(port, context_for(*files))
    except (ssl.SSLError, ConnectionError):
        return False
    try:
        client.send(harness.connect_packet(client_id=client_id))
        ptype, _, body = client.read_packet(timeout=WAIT)
        return ptype == 2 and body[1:2] == b"\x00"  # CONNACK, accepted
    except (harness.Closed, ssl.SSLError, ConnectionError):
        return False
    finally:
        client.sock.close()


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


# ----------------------------------------------------------------------------------------------
# OCSP: certificates naming a responder, revocation in the CA database, a real responder

OCSP_CLIENT_EXTENSIONS = """\
[ v3_ocsp_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess = OCSP;URI:{url}
"""


def client_with_ocsp_url(ca: TestCa, name: str, cn: str, not_after: datetime.datetime,
                         url: str) -> tuple[str, str]:
    """As TestCa.client, with an Authority Information Access extension naming the OCSP
    responder url. Returns (chain path, key path)."""
    key, csr, leaf = (ca.dir / f"{name}.{ext}" for ext in ("key", "csr", "leaf"))
    extensions = ca.dir / f"{name}.ext"
    extensions.write_text(OCSP_CLIENT_EXTENSIONS.format(url=url))
    ca._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", str(key))
    ca._openssl("req", "-new", "-config", str(ca.config), "-key", str(key),
                "-subj", f"/O=mqtls test/CN={cn}", "-out", str(csr))
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    ca._ca("-rand_serial", "-extfile", str(extensions), "-extensions", "v3_ocsp_client",
           "-in", str(csr), "-out", str(leaf),
           "-startdate", asn1_time(start), "-enddate", asn1_time(not_after))
    chain = ca.dir / f"{name}.pem"
    chain.write_text(leaf.read_text() + Path(cert("intermediate-ca.pem")).read_text())
    return str(chain), str(key)


def revoke(ca: TestCa, name: str) -> None:
    """Marks the certificate issued as name (TestCa.client or client_with_ocsp_url) revoked
    in ca's database, which an OCSP responder reads."""
    ca._ca("-revoke", str(ca.dir / f"{name}.leaf"), "-crl_reason", "keyCompromise")


class OcspResponder(harness.Process):
    """`openssl ocsp` answering for the certificates in ca's database on a free port, signed by
    the intermediate CA (port: a given one instead). nrequest: answer that many requests,
    then exit."""

    def __init__(self, ca: TestCa, name: str = "ocsp", nrequest: int | None = None,
                 port: int | None = None):
        self.port = port or harness.free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        argv = ["openssl", "ocsp", "-index", str(ca.dir / "index.txt"), "-port", str(self.port),
                "-rsigner", cert("intermediate-ca.pem"), "-rkey", cert("intermediate-ca.key"),
                "-CA", cert("intermediate-ca.pem"), "-text", "-ignore_err"]
        if nrequest is not None:
            argv += ["-nrequest", str(nrequest)]
        super().__init__(name, argv, ca.dir / f"{name}.log")
        self.wait_for_log(r"ACCEPT ")

    def requests(self) -> int:
        """OCSP requests answered so far."""
        return self.log().count("Received request")

"""Shared machinery for the mqtls integration tests.

Every test runs the real mqtls binary in front of a real Mosquitto broker, both on free ports on
the loopback interface, and talks to mqtls with mosquitto_pub/mosquitto_sub, openssl s_client or
the raw MQTT-over-TLS client below (for hand-made packets). A Tap can sit between mqtls and the
broker to record the exact bytes mqtls forwards upstream.

Environment:
  MQTLS_BIN        the mqtls binary (default: build/proxy/mqtls next to the sources)
  MQTLS_CERTS_DIR  the PKI made by certs/gen.sh (default: build/certs)
  MQTLS_MOSQUITTO  the broker binary (default: mosquitto on PATH, else /usr/sbin/mosquitto)
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]
MQTLS_BIN = os.environ.get("MQTLS_BIN") or str(SOURCE_DIR / "build" / "proxy" / "mqtls")
CERTS_DIR = os.environ.get("MQTLS_CERTS_DIR") or str(SOURCE_DIR / "build" / "certs")
MOSQUITTO = (os.environ.get("MQTLS_MOSQUITTO") or shutil.which("mosquitto")
             or "/usr/sbin/mosquitto")


def _sanitized(path: str) -> bool:
    """True when the mqtls binary at path is built with the sanitizers (scripts/test.sh's second
    pass); False when it is not, or cannot be read."""
    try:
        with open(path, "rb") as binary:
            return b"__asan_init" in binary.read()
    except OSError:
        return False


SANITIZED = _sanitized(MQTLS_BIN)

# Upper bound for anything that should happen "soon". Waits poll and return as soon as the
# condition holds, so this only costs time when a test is about to fail. Generous because the
# suite also runs under sanitizers.
WAIT = 20.0


def cert(name: str) -> str:
    """Absolute path of a file of the test PKI, e.g. cert("client.pem")."""
    return os.path.join(CERTS_DIR, name)


CA_BUNDLE = cert("ca-bundle.pem")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# Every port handed out stays bound here, unlistened, with SO_REUSEADDR set after the bind,
# until this test process exits. While it is held, the kernel gives it to no outgoing
# connection (connect() skips ports with an explicitly bound socket), no other test process
# can pick it (their probe bind, without SO_REUSEADDR, fails), yet the server the test starts
# there binds and listens (mqtls, Mosquitto, evhttp and openssl all set SO_REUSEADDR).
_held: dict[int, socket.socket] = {}


def free_port(host: str = "127.0.0.1", hold: bool = True) -> int:
    """A port that is bindable now and stays reserved for this process (see _held), picked at
    random from 10000 up to the kernel's ephemeral range, or up to 61000 when that range
    starts too low to leave room (1024-65535 is common). hold=False: probed and released, for
    a server that binds without SO_REUSEADDR; such a port may be taken again before it binds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = 10000
    high = _ephemeral_range()[0] - 1
    if high - low < 5000:
        high = 61000
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port in _held:
            continue
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.bind((host, port))
        except OSError:
            probe.close()
            continue
        if not hold:
            probe.close()
            return port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _held[port] = probe
        return port
    raise RuntimeError(f"no free port found in {low}-{high}")


def ipv6_loopback_problem() -> str | None:
    """None when a TCP connection over ::1 works here (bind, listen, connect, accept), else
    what failed, with the error, for a skip reason that says why."""
    if not socket.has_ipv6:
        return "this Python was built without IPv6 support"
    step = "socket(AF_INET6)"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as server:
            step = "bind(::1)"
            server.bind(("::1", 0))
            server.listen(1)
            step = "connect to ::1"
            with socket.create_connection(server.getsockname()[:2], timeout=5):
                step = "accept on ::1"
                server.settimeout(5)
                server.accept()[0].close()
        return None
    except OSError as error:
        return f"no usable IPv6 loopback: {step} failed: {error}"


def ipv6_loopback_available() -> bool:
    return ipv6_loopback_problem() is None


def wait_until(predicate, timeout: float = WAIT, interval: float = 0.02, what: str = "condition"):
    """Polls predicate() until it returns a truthy value, which is returned; fails on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------------------------
# Processes


class Process:
    """A child process whose stderr (and optionally stdout) goes to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, stdout_to_log: bool = True):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log_file = open(log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file if stdout_to_log else subprocess.DEVNULL,
            stderr=self._log_file,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self) -> list[str]:
        # Only "\n" ends a line: str.splitlines() would also split at U+2028 and friends.
        return self.log().rstrip("\n").split("\n") if self.log() else []

    def wait_for_log(self, pattern: str, timeout: float = WAIT, start: int = 0,
                     flags: int = 0) -> re.Match:
        """Waits until the log (from character offset start) matches the regex pattern."""
        regex = re.compile(pattern, flags)

        def found():
            match = regex.search(self.log(), start)
            if match is None and not self.running():
                match = regex.search(self.log(), start)
                if match is None:
                    raise AssertionError(
                        f"{self.name} exited (status {self.proc.returncode}) before logging "
                        f"/{pattern}/")
            return match

        return wait_until(found, timeout, what=f"{self.name} log /{pattern}/")

    def send_signal(self, signo: int) -> None:
        if self.running():
            self.proc.send_signal(signo)

    def wait(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout)

    def stop(self, signo: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        """Sends signo and waits; kills the process if it does not exit in time."""
        if self.running():
            self.proc.send_signal(signo)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


class Broker(Process):
    """Mosquitto on a free loopback port (and optionally a Unix socket), with the device ACL:
    a client may publish only under devices/<its username>/ and read all of devices/."""

    ACL = "pattern write devices/%u/#\npattern read devices/#\ntopic read devices/#\n"

    def __init__(self, workdir: Path, port: int | None = None, unix_socket: bool = False,
                 extra_conf: str = "", wait_ready: bool = True):
        self.port = port or free_port()
        self.unix_socket = str(workdir / "broker.sock") if unix_socket else None
        self.workdir = workdir
        acl = workdir / "broker.acl"
        acl.write_text(self.ACL)
        conf = [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.unix_socket:
            conf.append(f"listener 0 {self.unix_socket}")
        conf += [
            "allow_anonymous true",
            f"acl_file {acl}",
            "connection_messages true",
            "log_type all",
            "log_dest stderr",
            "log_timestamp true",
        ]
        conf_path = workdir / "mosquitto.conf"
        conf_path.write_text("\n".join(conf) + "\n" + extra_conf)
        super().__init__("mosquitto", [MOSQUITTO, "-c", str(conf_path)],
                         workdir / "mosquitto.log")
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = WAIT) -> None:
        self.wait_for_log(r"mosquitto version \S+ running", timeout)

    def connected_clients(self, start: int = 0) -> list[tuple[str, str | None]]:
        """(client id, username or None) of every 'New client connected' line after offset
        start."""
        out = []
        for client_id, details in re.findall(
                r"New client connected from \S+ as (\S+) \(([^)]*)\)", self.log()[start:]):
            user = re.search(r"u'([^']*)'", details)
            out.append((client_id, user.group(1) if user else None))
        return out

    def tcp_connections(self, start: int = 0) -> list[str]:
        """Every 'New connection from' line (a TCP accept) after offset start."""
        return re.findall(r"New connection from .*", self.log()[start:])

    def wait_subscribed(self, client_id: str, start: int = 0, timeout: float = WAIT) -> None:
        self.wait_for_log(rf"Sending SUBACK to {re.escape(client_id)}\b", timeout, start)


def to_yaml(value, indent: int = 0) -> str:
    """A small block-style YAML emitter for plain dicts, lists, strings, numbers and booleans."""
    pad = "  " * indent

    def scalar(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if v is None:
            return ""
        return json.dumps(str(v))

    lines = []
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            elif isinstance(item, dict):
                lines.append(f"{pad}{key}: {{}}\n")
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: []\n")
            else:
                lines.append(f"{pad}{key}: {scalar(item)}\n")
        return "".join(lines)
    if isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 1)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {scalar(item)}\n")
        return "".join(lines)
    return pad + scalar(value) + "\n"


def merge(base: dict, override: dict) -> dict:
    """Deep merge: dicts are merged key by key, anything else in override replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def base_config(upstream_port: int, listen_port: int, metrics_port: int) -> dict:
    return {
        "workers": 2,
        "log": {"level": "info", "format": "text"},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        # Tests count the broker's connections: check it only while /readyz is asked.
        "admin": {"broker_check": "on_demand"},
        "listeners": [{
            "name": "mqtts",
            "bind": "127.0.0.1",
            "port": listen_port,
            "tls": {
                "cert": cert("server-ec.pem"),
                "key": cert("server-ec.key"),
                "client_ca": CA_BUNDLE,
            },
        }],
        "upstream": {"host": "127.0.0.1", "port": upstream_port, "connect_timeout": "5s"},
        "limits": {"drain_timeout": "5s"},
    }


ACCESS_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
METRIC_LINE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
METRIC_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Metrics(dict):
    """Prometheus samples: {(name, ((label, value), ...)): float}."""

    def get_value(self, name: str, **labels) -> float:
        """Sum of the samples of name whose labels include the given ones (0 if none)."""
        total = 0.0
        for (sample, sample_labels), value in self.items():
            if sample != name:
                continue
            as_dict = dict(sample_labels)
            if all(as_dict.get(k) == v for k, v in labels.items()):
                total += value
        return total


def parse_metrics(text: str) -> Metrics:
    out = Metrics()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        if not match:
            continue
        labels = tuple(sorted(METRIC_LABEL.findall(match.group(2) or "")))
        out[(match.group(1), labels)] = float(match.group(3))
    return out


def parse_access_line(line: str) -> dict | None:
    """The fields of a text-format access line (event=connection_closed), or None."""
    if "event=connection_closed" not in line:
        return None
    fields = {}
    for key, value in ACCESS_FIELD.findall(line.split(" info ", 1)[-1]):
        if value.startswith('"'):
            value = json.loads(value)
        fields[key] = value
    return fields


class Proxy(Process):
    """mqtls started from a config dict (or YAML text) written to the work directory."""

    def __init__(self, workdir: Path, config: dict | str, name: str = "mqtls",
                 wait_ready: bool = True, expected_exit: int = 0,
                 launcher: list[str] | None = None):
        """launcher: a command that execs mqtls (its arguments appended), e.g. a tool that
        installs a seccomp filter first."""
        self.workdir = workdir
        self.config = config
        # The status the test expects mqtls to end with: 0 (stopped by SIGTERM at teardown if
        # still running), or the non-zero status of a run that must fail by itself (a port in
        # use, a bad configuration). Anything else fails the test (see stop_and_check).
        self.expected_exit = expected_exit
        self.config_path = workdir / f"{name}.yaml"
        text = config if isinstance(config, str) else to_yaml(config)
        self.config_path.write_text(text)
        if isinstance(config, dict):
            self.port = config["listeners"][0]["port"]
            listen = config.get("metrics", {}).get("listen", "")
            self.metrics_url = f"http://{listen}/metrics" if listen else None
        super().__init__(name, [*(launcher or []), MQTLS_BIN, "--config", str(self.config_path)],
                         workdir / f"{name}.log")
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = WAIT) -> None:
        self.wait_for_log(r"mqtls ready", timeout)

    def metrics(self) -> Metrics:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return parse_metrics(response.read().decode())

    def metric(self, name: str, **labels) -> float:
        return self.metrics().get_value(name, **labels)

    def wait_metric(self, name: str, at_least: float = 1, timeout: float = WAIT,
                    **labels) -> float:
        """Waits until the metric (summed over matching labels) reaches at_least; returns it."""
        found = wait_until(lambda: (v := self.metric(name, **labels)) >= at_least and (v,),
                           timeout, interval=0.05,
                           what=f"metric {name}{labels} >= {at_least}")
        return found[0]

    def access_records(self) -> list[dict]:
        records = []
        for line in self.log_lines():
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("event") == "connection_closed":
                    records.append(obj)
            else:
                record = parse_access_line(line)
                if record is not None:
                    records.append(record)
        return records

    def wait_access(self, timeout: float = WAIT, **fields) -> dict:
        """The first access record whose fields equal the given ones (as strings)."""

        def find():
            for record in self.access_records():
                if all(str(record.get(k)) == str(v) for k, v in fields.items()):
                    return record
            return None

        return wait_until(find, timeout, what=f"access line with {fields}")


def replace_file(source: str, target: Path) -> None:
    """Puts source's bytes at target the way rotation tools do: a temporary file, then rename."""
    staged = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, staged)
    os.replace(staged, target)


def run_mqtls(*args: str, timeout: float = 60,
              expected_exit: int | None = None) -> subprocess.CompletedProcess:
    """Runs mqtls to completion (--check, --version, a start that must fail). A crash (death by
    a signal) always fails the caller, with the tail of stderr; so does any status other than
    expected_exit when one is given."""
    result = subprocess.run([MQTLS_BIN, *args], capture_output=True, text=True, timeout=timeout)
    unexpected = expected_exit is not None and result.returncode != expected_exit
    if result.returncode < 0 or unexpected:
        wanted = "" if expected_exit is None else f"; expected {describe_status(expected_exit)}"
        tail = "\n".join(result.stderr.splitlines()[-LOG_TAIL_LINES:])
        raise AssertionError(f"mqtls {' '.join(args)}: {describe_status(result.returncode)}"
                             f"{wanted}; last lines of its stderr:\n{tail}")
    return result


# ----------------------------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub


def tls_args(port: int, identity: str | None = "client", host: str = "localhost") -> list[str]:
    """Connection options for the Mosquitto clients: through mqtls with client cert identity
    (a file stem of the PKI such as "client" or "client2"; None for no client certificate)."""
    args = ["-h", host, "-p", str(port), "--cafile", CA_BUNDLE]
    if identity:
        args += ["--cert", cert(f"{identity}.pem"), "--key", cert(f"{identity}.key")]
    return args


def pub(port: int, topic: str, message: str | None = "hello", identity: str | None = "client",
        version: str = "mqttv311", args: list[str] = (), host: str = "localhost",
        timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs mosquitto_pub once; returns the completed process (returncode, stdout, stderr)."""
    argv = ["mosquitto_pub", *tls_args(port, identity, host), "-V", version, "-t", topic]
    if message is not None:
        argv += ["-m", message]
    argv += list(args)
    return subprocess.run(argv, capture_output=True, timeout=timeout)


class Sub:
    """mosquitto_sub in the background, collecting its stdout."""

    def __init__(self, port: int, topic: str, identity: str | None = "client2",
                 version: str = "mqttv311", client_id: str = "sub", count: int = 1,
                 wait_s: int = 30, args: list[str] = (), host: str = "localhost",
                 direct: bool = False):
        self.client_id = client_id
        if direct:
            conn = ["-h", "127.0.0.1", "-p", str(port)]
        else:
            conn = tls_args(port, identity, host)
        argv = ["mosquitto_sub", *conn, "-V", version, "-i", client_id, "-t", topic]
        if count:
            argv += ["-C", str(count)]
        if wait_s:
            argv += ["-W", str(wait_s)]
        argv += list(args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.stdout = b""
        self.stderr = b""

    def wait(self, timeout: float = WAIT * 2) -> tuple[int, bytes]:
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stdout, self.stderr = self.proc.communicate()
            raise AssertionError(f"mosquitto_sub did not finish in {timeout}s; "
                                 f"stdout={self.stdout!r} stderr={self.stderr!r}")
        return self.proc.returncode, self.stdout

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=10)
        except (subprocess.TimeoutExpired, ValueError):
            pass


# ----------------------------------------------------------------------------------------------
# MQTT encoding/decoding for hand-made packets

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = \
    1, 2, 3, 4, 8, 9, 12, 13, 14

BYTE_PROPS = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
U16_PROPS = {0x13, 0x21, 0x22, 0x23}
U32_PROPS = {0x02, 0x11, 0x18, 0x27}
VARINT_PROPS = {0x0B}
STRING_PROPS = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
BINARY_PROPS = {0x09, 0x16}
USER_PROPERTY = 0x26
ASSIGNED_CLIENT_ID = 0x12


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    for i in range(4):
        byte = data[at + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at + i + 1
    raise ValueError("variable byte integer longer than 4 bytes")


def mqtt_str(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def encode_properties(props: list[tuple[int, object]]) -> bytes:
    body = bytearray()
    for pid, value in props:
        body += varint(pid)
        if pid in BYTE_PROPS:
            body.append(value)
        elif pid in U16_PROPS:
            body += struct.pack("!H", value)
        elif pid in U32_PROPS:
            body += struct.pack("!I", value)
        elif pid in VARINT_PROPS:
            body += varint(value)
        elif pid in STRING_PROPS or pid in BINARY_PROPS:
            body += mqtt_str(value)
        elif pid == USER_PROPERTY:
            body += mqtt_str(value[0]) + mqtt_str(value[1])
        else:
            raise ValueError(f"unknown property 0x{pid:02x}")
    return varint(len(body)) + bytes(body)


def decode_properties(data: bytes, at: int) -> tuple[list[tuple[int, object]], int]:
    length, at = read_varint(data, at)
    end = at + length
    props = []
    while at < end:
        pid, at = read_varint(data, at)
        if pid in BYTE_PROPS:
            value, at = data[at], at + 1
        elif pid in U16_PROPS:
            value, at = struct.unpack_from("!H", data, at)[0], at + 2
        elif pid in U32_PROPS:
            value, at = struct.unpack_from("!I", data, at)[0], at + 4
        elif pid in VARINT_PROPS:
            value, at = read_varint(data, at)
        elif pid in STRING_PROPS or pid in BINARY_PROPS or pid == USER_PROPERTY:
            n = struct.unpack_from("!H", data, at)[0]
            first = data[at + 2:at + 2 + n]
            at += 2 + n
            if pid == USER_PROPERTY:
                m = struct.unpack_from("!H", data, at)[0]
                value = (first.decode(), data[at + 2:at + 2 + m].decode())
                at += 2 + m
            elif pid in STRING_PROPS:
                value = first.decode()
            else:
                value = bytes(first)
        else:
            raise ValueError(f"unknown property 0x{pid:02x}")
        props.append((pid, value))
    if at != end:
        raise ValueError("property length mismatch")
    return props, end


def packet(ptype: int, body: bytes, flags: int = 0) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_packet(level: int = 4, client_id: str = "raw", username: str | None = None,
                   password: bytes | str | None = None, clean: bool = True,
                   keepalive: int = 60, properties: list | None = None, will: dict | None = None,
                   protocol_name: str | None = None, reserved_flag: bool = False) -> bytes:
    """A CONNECT for level 3 (MQIsdp), 4 (3.1.1) or 5. will: {topic, payload, qos, retain,
    properties}."""
    name = protocol_name or ("MQIsdp" if level == 3 else "MQTT")
    flags = 0
    if reserved_flag:
        flags |= 0x01
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = bytearray(mqtt_str(name) + bytes([level, flags]) + struct.pack("!H", keepalive))
    if level == 5:
        body += encode_properties(properties or [])
    body += mqtt_str(client_id)
    if will is not None:
        if level == 5:
            body += encode_properties(will.get("properties", []))
        body += mqtt_str(will["topic"]) + mqtt_str(will.get("payload", b""))
    if username is not None:
        body += mqtt_str(username)
    if password is not None:
        body += mqtt_str(password)
    return packet(CONNECT, bytes(body))


def subscribe_packet(packet_id: int, topic: str, qos: int = 0, level: int = 4) -> bytes:
    body = struct.pack("!H", packet_id)
    if level == 5:
        body += encode_properties([])
    body += mqtt_str(topic) + bytes([qos])
    return packet(SUBSCRIBE, body, flags=0x02)


def decode_publish(flags: int, body: bytes, level: int = 4) -> dict:
    n = struct.unpack_from("!H", body, 0)[0]
    out = {"topic": body[2:2 + n].decode(), "qos": (flags >> 1) & 3, "properties": []}
    at = 2 + n
    if out["qos"]:
        out["packet_id"] = struct.unpack_from("!H", body, at)[0]
        at += 2
    if level == 5:
        out["properties"], at = decode_properties(body, at)
    out["payload"] = bytes(body[at:])
    return out


def split_packet(data: bytes) -> tuple[int, int, bytes, int]:
    """(type, flags, body, total size) of the packet at the start of data."""
    length, at = read_varint(data, 1)
    if len(data) < at + length:
        raise ValueError("incomplete packet")
    return data[0] >> 4, data[0] & 0x0F, data[at:at + length], at + length


def decode_connect(data: bytes) -> dict:
    """Decodes the CONNECT at the start of data (fixed header included)."""
    ptype, _, body, size = split_packet(data)
    if ptype != CONNECT:
        raise ValueError(f"not a CONNECT: type {ptype}")
    n = struct.unpack_from("!H", body, 0)[0]
    at = 2 + n
    out = {"protocol_name": body[2:at].decode(), "level": body[at], "flags": body[at + 1],
           "keepalive": struct.unpack_from("!H", body, at + 2)[0], "size": size,
           "properties": [], "will": None, "username": None, "password": None}
    flags = out["flags"]
    at += 4
    if out["level"] == 5:
        out["properties"], at = decode_properties(body, at)

    def take_str() -> bytes:
        nonlocal at
        m = struct.unpack_from("!H", body, at)[0]
        value = bytes(body[at + 2:at + 2 + m])
        at += 2 + m
        return value

    out["client_id"] = take_str().decode()
    if flags & 0x04:
        will = {"properties": []}
        if out["level"] == 5:
            will["properties"], at = decode_properties(body, at)
        will["topic"] = take_str().decode()
        will["payload"] = take_str()
        out["will"] = will
    if flags & 0x80:
        out["username"] = take_str().decode()
    if flags & 0x40:
        out["password"] = take_str()
    if at != len(body):
        raise ValueError("trailing bytes in CONNECT")
    return out


def decode_connack(body: bytes, level: int) -> dict:
    out = {"session_present": bool(body[0] & 1), "code": body[1], "properties": []}
    if level == 5 and len(body) > 2:
        out["properties"], _ = decode_properties(body, 2)
    return out


def user_properties(props: list[tuple[int, object]]) -> list[tuple[str, str]]:
    return [value for pid, value in props if pid == USER_PROPERTY]


def first_cert_der(pem_path: str) -> bytes:
    """The DER of the first certificate in a PEM file (a chain file starts with its leaf)."""
    text = Path(pem_path).read_text()
    end = "-----END CERTIFICATE-----"
    first = text[:text.index(end) + len(end)]
    return ssl.PEM_cert_to_DER_cert(first[first.index("-----BEGIN CERTIFICATE-----"):])


def cert_sha256(pem_path: str) -> str:
    """Lowercase hex SHA-256 of the DER of the first certificate in a PEM file."""
    return hashlib.sha256(first_cert_der(pem_path)).hexdigest()


# ----------------------------------------------------------------------------------------------
# Raw MQTT over TLS


class Closed(Exception):
    """The peer closed the connection (EOF, reset or TLS alert) while a packet was expected."""


@functools.lru_cache(maxsize=None)
def client_context(identity: str | None, min_version: ssl.TLSVersion | None = None,
                   max_version: ssl.TLSVersion | None = None,
                   alpn: tuple[str, ...] | None = None) -> ssl.SSLContext:
    """One client context per settings, so a TLS session can be resumed by a later client."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Some Python builds ignore a close without close_notify by default; RawClient reports it.
    context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    context.load_verify_locations(CA_BUNDLE)
    if identity:
        context.load_cert_chain(cert(f"{identity}.pem"), cert(f"{identity}.key"))
    if min_version:
        context.minimum_version = min_version
    if max_version:
        context.maximum_version = max_version
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


class RawClient:
    """A TLS client for hand-made MQTT bytes."""

    def __init__(self, port: int, identity: str | None = "client", host: str = "127.0.0.1",
                 server_name: str = "localhost", timeout: float = WAIT,
                 min_version: ssl.TLSVersion | None = None,
                 max_version: ssl.TLSVersion | None = None,
                 session: ssl.SSLSession | None = None, alpn: list[str] | None = None,
                 rcvbuf: int | None = None):
        """rcvbuf: SO_RCVBUF set before connecting, so the kernel advertises a small window
        and mqtls's sends to this client fill its socket buffer quickly."""
        context = client_context(identity, min_version, max_version,
                                 tuple(alpn) if alpn else None)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        raw = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(timeout)
            raw.connect((host, port))
        except BaseException:
            raw.close()
            raise
        try:
            # Unclean closes (no close_notify) raise instead of reading as EOF: see close_error.
            self.sock = context.wrap_socket(raw, server_hostname=server_name, session=session,
                                            suppress_ragged_eofs=False)
        except BaseException:
            raw.close()
            raise
        self.buffer = b""
        # Why the peer's close was not a clean TLS close_notify (None if it was, or still open).
        self.close_error: BaseException | None = None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, n: int, timeout: float) -> None:
        self.sock.settimeout(timeout)
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLError, ConnectionError) as error:
                self.close_error = error
                raise Closed(str(error)) from error
            if not chunk:
                raise Closed("EOF")
            self.buffer += chunk

    def read_packet(self, timeout: float = WAIT) -> tuple[int, int, bytes]:
        """(type, flags, body) of the next packet. Raises Closed on close, TimeoutError."""
        self._fill(2, timeout)
        length, at = 0, 1
        for i in range(4):
            self._fill(at + 1, timeout)
            byte = self.buffer[at]
            length |= (byte & 0x7F) << (7 * i)
            at += 1
            if not byte & 0x80:
                break
        self._fill(at + length, timeout)
        first, body = self.buffer[0], self.buffer[at:at + length]
        self.buffer = self.buffer[at + length:]
        return first >> 4, first & 0x0F, body

    def read_raw(self, n: int, timeout: float = WAIT) -> bytes:
        self._fill(n, timeout)
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def connack(self, level: int = 4, timeout: float = WAIT) -> dict:
        ptype, _, body = self.read_packet(timeout)
        if ptype != CONNACK:
            raise AssertionError(f"expected CONNACK, got packet type {ptype}")
        return decode_connack(body, level)

    def expect_closed(self, timeout: float = WAIT) -> bytes:
        """Waits for the peer to close; returns whatever bytes arrived before (fails on a
        timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"connection still open after {timeout}s")
            try:
                self._fill(len(self.buffer) + 1, remaining)
            except Closed:
                return self.buffer
            except (TimeoutError, socket.timeout):
                raise AssertionError(f"connection still open after {timeout}s") from None

    def subscribe(self, topic: str, level: int = 4, packet_id: int = 1) -> None:
        """Subscribes at QoS 0 and waits for the SUBACK."""
        self.send(subscribe_packet(packet_id, topic, level=level))
        ptype, _, body = self.read_packet()
        if ptype != SUBACK or body[:2] != struct.pack("!H", packet_id):
            raise AssertionError(f"expected SUBACK, got type {ptype}: {body!r}")
        if body[-1] >= 0x80:
            raise AssertionError(f"subscription refused: 0x{body[-1]:02x}")

    def ping(self, timeout: float = WAIT) -> None:
        """A PINGREQ answered by a PINGRESP: the session is alive end to end."""
        self.send(packet(PINGREQ, b""))
        ptype, _, _ = self.read_packet(timeout)
        if ptype != PINGRESP:
            raise AssertionError(f"expected PINGRESP, got packet type {ptype}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def raw_session(port: int, level: int = 4, client_id: str = "raw", **kwargs) -> RawClient:
    """A RawClient that sent a CONNECT and got a successful CONNACK."""
    tls_keys = ("identity", "host", "server_name", "timeout", "min_version", "max_version",
                "session", "alpn", "rcvbuf")
    client = RawClient(port, **{k: v for k, v in kwargs.items() if k in tls_keys})
    connect_kwargs = {k: v for k, v in kwargs.items() if k not in tls_keys}
    client.send(connect_packet(level=level, client_id=client_id, **connect_kwargs))
    ack = client.connack(level)
    if ack["code"] != 0:
        client.close()
        raise AssertionError(f"CONNACK code {ack['code']}")
    return client


def plain_session(port: int, client_id: str, username: str | None = None,
                  level: int = 4) -> socket.socket:
    """A plain TCP MQTT session straight to the broker (not through mqtls), after a successful
    CONNACK. The caller closes the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        sock.sendall(connect_packet(level=level, client_id=client_id, username=username,
                                    keepalive=0))
        data = b""
        while len(data) < 4:
            chunk = sock.recv(4 - len(data))
            if not chunk:
                raise AssertionError(f"broker closed the session of {client_id} at CONNECT")
            data += chunk
        if data[0] >> 4 != CONNACK or data[3] != 0:
            raise AssertionError(f"broker refused {client_id}: {data!r}")
        return sock
    except BaseException:
        sock.close()
        raise


# ----------------------------------------------------------------------------------------------
# Bulk transfers: many QoS 0 PUBLISHes, sent without blocking forever and counted on arrival


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS from /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (utime and stime, fields 14 and 15 of
    /proc/<pid>/stat, counted after the command name, which may hold spaces)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BulkMessages:
    """count QoS 0 PUBLISH packets to topic, each a sequence number and size - 8 bytes of
    pseudo-random filler; digest() is the SHA-256 of all payloads in order."""

    def __init__(self, topic: str, count: int, size: int, seed: int = 7):
        self.topic, self.count, self.size = topic, count, size
        rng = random.Random(seed)
        self._fillers = [rng.randbytes(size - 8) for _ in range(4)]
        self._header = packet(PUBLISH, mqtt_str(topic) + bytes(size))[:-size]

    def payload(self, index: int) -> bytes:
        return struct.pack("!Q", index) + self._fillers[index % len(self._fillers)]

    def packet(self, index: int) -> bytes:
        return self._header + self.payload(index)

    @property
    def payload_bytes(self) -> int:
        return self.count * self.size

    @property
    def packet_bytes(self) -> int:
        return self.count * (len(self._header) + self.size)

    def digest(self) -> str:
        h = hashlib.sha256()
        for i in range(self.count):
            h.update(self.payload(i))
        return h.hexdigest()


def send_without_hanging(sock: socket.socket, data: bytes, deadline: float,
                         stop: threading.Event | None = None) -> None:
    """Sends all of data on a blocking TCP or TLS socket, waiting for room in short steps so
    that a peer that stops reading fails the sender at the deadline (or when stop is set)
    instead of hanging it. Raises TimeoutError at the deadline."""
    view = memoryview(data)
    sock.settimeout(0.2)
    while view:
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            raise TimeoutError(f"{len(view)} bytes still unsent")
        try:
            sent = sock.send(view)
        except (TimeoutError, socket.timeout, ssl.SSLWantWriteError):
            continue  # a TLS socket retries the same bytes, as OpenSSL requires
        view = view[sent:]


class PublishCounter:
    """Reads a stream of MQTT packets (from a TLS or TCP socket) and counts the PUBLISH
    payloads: how many, how many bytes, and their SHA-256 in order. Other packets are
    skipped. read_some() returns False at EOF; a TLS close without close_notify raises."""

    def __init__(self, sock: socket.socket, level: int = 4):
        self.sock, self.level = sock, level
        self.buffer = bytearray()
        self.messages = 0
        self.payload_bytes = 0
        self.bytes_read = 0
        self._hash = hashlib.sha256()

    def digest(self) -> str:
        return self._hash.hexdigest()

    def read_some(self, max_bytes: int = 65536, timeout: float = WAIT) -> bool:
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(max_bytes)
        if not chunk:
            return False
        self.bytes_read += len(chunk)
        self.buffer += chunk
        self._parse()
        return True

    def _parse(self) -> None:
        at = 0
        while len(self.buffer) - at >= 2:
            try:
                length, body_at = read_varint(self.buffer, at + 1)
            except IndexError:
                break
            end = body_at + length
            if end > len(self.buffer):
                break
            if self.buffer[at] >> 4 == PUBLISH:
                message = decode_publish(self.buffer[at] & 0x0F,
                                         bytes(self.buffer[body_at:end]), self.level)
                self.messages += 1
                self.payload_bytes += len(message["payload"])
                self._hash.update(message["payload"])
            at = end
        del self.buffer[:at]


# ----------------------------------------------------------------------------------------------
# Tap: a TCP relay that records what mqtls sends to the broker


class TapConnection:
    def __init__(self):
        self.upstream = bytearray()  # mqtls -> broker
        self.downstream = bytearray()  # broker -> mqtls
        self.closed = threading.Event()

    def connect(self) -> dict | None:
        """The decoded CONNECT at the start of the upstream bytes, once it is complete."""
        try:
            return decode_connect(bytes(self.upstream))
        except (ValueError, IndexError, struct.error):
            return None


class Tap:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.connections: list[TapConnection] = []
        self.lock = threading.Lock()
        self.stopping = False
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            record = TapConnection()
            with self.lock:
                self.connections.append(record)
                self.sockets += [client, upstream]
            done = [0]

            def relay(src, dst, sink, record=record, done=done):
                try:
                    while True:
                        data = src.recv(65536)
                        if not data:
                            break
                        sink += data
                        dst.sendall(data)
                except OSError:
                    pass
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                with self.lock:
                    done[0] += 1
                    if done[0] == 2:
                        record.closed.set()

            threading.Thread(target=relay, args=(client, upstream, record.upstream),
                             daemon=True).start()
            threading.Thread(target=relay, args=(upstream, client, record.downstream),
                             daemon=True).start()

    def wait_connect(self, index: int = -1, timeout: float = WAIT) -> dict:
        """The decoded CONNECT of connection index (default: the latest) once complete."""

        def get():
            with self.lock:
                if not self.connections:
                    return None
                record = self.connections[index]
            return record.connect()

        return wait_until(get, timeout, what="a CONNECT through the tap")

    def close(self):
        self.stopping = True
        try:
            self.server.close()
        except OSError:
            pass
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass


class FakeBroker:
    """A scripted broker on a free loopback port: for each connection, reads the CONNECT and
    calls handler(sock, connect_bytes) in a thread; the socket is closed when it returns."""

    def __init__(self, handler):
        self.handler = handler
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.errors: list[BaseException] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        try:
            sock.settimeout(WAIT)
            data = b""
            while True:
                try:
                    _, _, _, size = split_packet(data)
                    break
                except (ValueError, IndexError):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            self.handler(sock, data[:size])
        except BaseException as error:  # reported by the test through self.errors
            self.errors.append(error)
        finally:
            sock.close()

    def close(self):
        self.server.close()


SANITIZER_REPORT = re.compile(r"ERROR: \w+Sanitizer|SUMMARY: \w+Sanitizer|runtime error: ")
LOG_TAIL_LINES = 40


def describe_status(status: int | None) -> str:
    """'exit status 2', 'killed by signal SIGSEGV (11)' or 'still running'."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {name} ({-status})"
    return f"exit status {status}"


def log_tail(process: Process, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(process.log_lines()[-lines:])


def stop_and_check(proxy: Proxy) -> list[str]:
    """Ends mqtls at teardown and returns what went wrong, [] if nothing did.

    A process still running is stopped as an operator would (SIGTERM, a second one if the drain
    takes too long) and must exit 0; unless the test declared with proxy.expected_exit that it
    exits by itself, which makes "still running" a problem. A process that already exited must
    have exited with proxy.expected_exit (0 unless the test said otherwise): a crash (any
    signal) or an unexpected status is a problem, with or without a sanitizer. A sanitizer
    report in the log is always a problem."""
    problems = []
    if proxy.running():
        if proxy.expected_exit != 0:
            problems.append(f"still running at teardown; the test expected it to exit with "
                            f"{describe_status(proxy.expected_exit)}")
        proxy.send_signal(signal.SIGTERM)
        try:
            status = proxy.wait(WAIT)
        except subprocess.TimeoutExpired:
            proxy.send_signal(signal.SIGTERM)
            try:
                status = proxy.wait(WAIT)
            except subprocess.TimeoutExpired:
                status = None
                problems.append("did not exit after two SIGTERMs")
        proxy.kill()
        if status is not None and status != 0:
            problems.append(f"{describe_status(status)} after SIGTERM at teardown")
    else:
        proxy.stop()
        status = proxy.proc.returncode
        if status != proxy.expected_exit:
            problems.append(f"exited during the test with {describe_status(status)}; expected "
                            f"{describe_status(proxy.expected_exit)}")
    text = proxy.log()
    match = SANITIZER_REPORT.search(text)
    if match:
        line_start = text.rfind("\n", 0, match.start()) + 1
        line_end = text.find("\n", match.end())
        line = text[line_start:line_end if line_end >= 0 else len(text)]
        problems.append(f"sanitizer report in the log: {line.strip()!r}")
    if problems:
        problems.append(f"last lines of its log:\n{log_tail(proxy)}")
    return problems


# ----------------------------------------------------------------------------------------------
# Test case base


class IntegrationTest(unittest.TestCase):
    """Gives each test a work directory and process bookkeeping; on failure, prints the logs of
    every process the test started."""

    def run(self, result=None):
        self._saved_logs: list[tuple[str, str]] = []
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for name, text in self._saved_logs:
                sys.stderr.write(f"\n----- {self.id()}: {name} log -----\n{text}"
                                 f"----- end of {name} log -----\n")
            sys.stderr.flush()
        return out

    def setUp(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="mqtls-it-"))
        os.chmod(self.workdir, 0o755)  # Mosquitto may drop privileges before reading files
        self.addCleanup(shutil.rmtree, self.workdir, ignore_errors=True)

    def _track(self, process: Process, label: str) -> None:
        def cleanup():
            problems = []
            if isinstance(process, Proxy):
                problems = stop_and_check(process)
            elif process.running():
                process.kill()
            else:
                process.stop()
            self._saved_logs.append((label, process.log()))
            if problems:
                raise AssertionError(f"{label} (pid {process.pid}): " + "; ".join(problems))

        self.addCleanup(cleanup)

    def start_broker(self, **kwargs) -> Broker:
        sub = Path(tempfile.mkdtemp(prefix="broker-", dir=self.workdir))
        os.chmod(sub, 0o777)  # run as root, Mosquitto drops to its own user before binding
        broker = Broker(sub, wait_ready=False, **kwargs)
        self._track(broker, f"mosquitto:{broker.port}")
        broker.wait_ready()
        return broker

    def proxy_config(self, upstream_port: int, **override) -> dict:
        config = base_config(upstream_port, free_port(), free_port())
        return merge(config, override)

    def start_proxy(self, config: dict | str, name: str = "mqtls", wait_ready: bool = True,
                    expected_exit: int = 0, launcher: list[str] | None = None) -> Proxy:
        """mqtls, checked at teardown: it must end with expected_exit (see stop_and_check), so
        a crash during the test fails it even when no assertion noticed. launcher: see Proxy."""
        proxy = Proxy(self.workdir, config, name, wait_ready=False, expected_exit=expected_exit,
                      launcher=launcher)
        self._track(proxy, name)
        if wait_ready:
            proxy.wait_ready()
        return proxy

    def start_tap(self, target_port: int) -> Tap:
        tap = Tap(target_port)
        self.addCleanup(tap.close)
        return tap

    def start_fake_broker(self, handler) -> FakeBroker:
        fake = FakeBroker(handler)
        self.addCleanup(fake.close)
        return fake

    def start_sub(self, *args, **kwargs) -> Sub:
        sub = Sub(*args, **kwargs)
        self.addCleanup(sub.kill)
        return sub

    def raw(self, port: int, **kwargs) -> RawClient:
        client = RawClient(port, **kwargs)
        self.addCleanup(client.close)
        return client

    def raw_session(self, port: int, **kwargs) -> RawClient:
        client = raw_session(port, **kwargs)
        self.addCleanup(client.close)
        return client

    # Common assertions ---------------------------------------------------------------------

    def assert_round_trip(self, proxy: Proxy, broker: Broker, tag: str,
                          version: str = "mqttv311") -> None:
        """A subscriber (client2) and a publisher (client) through proxy still work."""
        start = len(broker.log())
        client_id = f"check-{tag}"
        sub = self.start_sub(proxy.port, "devices/device-001/check", client_id=client_id,
                             version=version)
        broker.wait_subscribed(client_id, start=start)
        result = pub(proxy.port, "devices/device-001/check", f"ok-{tag}", version=version,
                     args=["-q", "1"])
        self.assertEqual(result.returncode, 0, result.stderr)
        code, out = sub.wait()
        self.assertEqual((code, out), (0, f"ok-{tag}\n".encode()))

"""The Kubernetes overlays in deploy/kubernetes: each one renders with `kubectl kustomize` into
Kubernetes objects that hold what a production mqtls needs (hardened containers, probes on the
admin listener, certificate volumes, drain timing, metrics, and per overlay its topology), and the
mqtls configuration inside each ConfigMap passes the real `mqtls --check` with real certificates
laid out as a Kubernetes Secret volume lays them out (`..data` symlinks).

Environment (set by ctest): MQTLS_KUBECTL (one kubectl, or several separated by ':' whose
renderings must agree; default: kubectl on PATH), MQTLS_BIN, MQTLS_CERTS_DIR.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import harness  # noqa: E402

SOURCE_DIR = Path(__file__).resolve().parents[2]
KUSTOMIZE_DIR = SOURCE_DIR / "deploy" / "kubernetes"
OVERLAYS = ("sidecar", "gateway")

# Objects the overlays refer to that the operator makes (each is documented where it is used).
OPERATOR_MADE = {("ConfigMap", "mqtls-client-ca"), ("Secret", "mqtls-ticket-keys")}

# kustomize's ConfigMap generator appends a content hash, computed differently by old and new
# kustomize versions.
GENERATED_NAME = re.compile(r"^(.+)-[a-z0-9]{10}$")

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def kubectls() -> list[str]:
    """The kubectl binaries to render with; fails the test when there is none."""
    value = os.environ.get("MQTLS_KUBECTL", "")
    names = [n for n in value.split(":") if n and not n.endswith("-NOTFOUND")]
    if not names and shutil.which("kubectl"):
        names = [shutil.which("kubectl")]
    if not names:
        raise AssertionError("kubectl not found: install Debian package kubernetes-client "
                             "(scripts/setup.sh does) or set MQTLS_KUBECTL")
    return names


def render(kubectl: str, overlay: str) -> list[dict]:
    """The objects `kubectl kustomize` makes of an overlay, parsed."""
    run = subprocess.run([kubectl, "kustomize", str(KUSTOMIZE_DIR / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        raise AssertionError(f"{kubectl} kustomize {overlay} failed: {run.stderr}")
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc is not None]


def normalized(objects: list[dict]) -> list[str]:
    """The objects as sorted JSON, generated names stripped of their hash."""
    text = json.dumps(objects, sort_keys=True)
    for obj in objects:
        match = GENERATED_NAME.match(obj["metadata"]["name"])
        if obj["kind"] == "ConfigMap" and match:
            text = text.replace(f'"{match.group(0)}"', f'"{match.group(1)}-<hash>"')
    return sorted(json.dumps(o, sort_keys=True) for o in json.loads(text))


def seconds(value) -> float:
    """An mqtls duration (30, "30s", "500ms", "2m", "1h") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", str(value).strip())
    assert match, f"not a duration: {value!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return float(match.group(1)) * scale


def selects(selector: dict, labels: dict) -> bool:
    """Whether a matchLabels selector (or a Service's plain selector) selects these labels."""
    wanted = selector.get("matchLabels", selector) if selector else {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


class Rendered:
    """One overlay's objects and the pieces of them the checks look at."""

    def __init__(self, objects: list[dict]):
        self.objects = objects
        deployments = [d for d in self.of("Deployment") if "mqtls" in
                       [c["name"] for c in d["spec"]["template"]["spec"]["containers"]]]
        assert len(deployments) == 1, "exactly one Deployment holds an mqtls container"
        self.deployment = deployments[0]
        self.pod = self.deployment["spec"]["template"]
        self.container = self.container_named(self.deployment, "mqtls")
        self.volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        self.mounts = {m["mountPath"]: m for m in self.container["volumeMounts"]}
        config_mount = Path(self.container["args"][self.container["args"].index("--config") + 1])
        volume = self.volume_at(str(config_mount.parent))
        self.config_map = self.named("ConfigMap", volume["configMap"]["name"])
        self.config_text = self.config_map["data"][config_mount.name]
        self.config = yaml.safe_load(self.config_text)

    def of(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict:
        found = [o for o in self.of(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind} {name} is rendered once"
        return found[0]

    @staticmethod
    def container_named(deployment: dict, name: str) -> dict:
        return next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                    if c["name"] == name)

    def volume_at(self, mount_path: str) -> dict:
        """The volume the mqtls container mounts at mount_path."""
        return self.volumes[self.mounts[mount_path]["name"]]

    def mount_of(self, path: str) -> str:
        """The mqtls container's mount path that holds file `path`."""
        holders = [m for m in self.mounts if path.startswith(m.rstrip("/") + "/")]
        assert holders, f"{path} is on no volume of the mqtls container"
        return max(holders, key=len)

    def port(self, name_or_number) -> int:
        for port in self.container["ports"]:
            if name_or_number in (port.get("name"), port["containerPort"]):
                return port["containerPort"]
        raise AssertionError(f"mqtls container has no port {name_or_number}")

    def config_files(self) -> list[str]:
        listener = self.config["listeners"][0]["tls"]
        files = [listener["cert"], listener["key"], listener["client_ca"]]
        session = listener.get("session") or {}
        if session.get("ticket_key_file"):
            files.append(session["ticket_key_file"])
        return files


class OverlayChecks:
    """Checks every overlay must pass; subclasses name the overlay."""

    OVERLAY = ""

    @classmethod
    def setUpClass(cls):
        names = kubectls()
        renders = [render(kubectl, cls.OVERLAY) for kubectl in names]
        cls.r = Rendered(renders[0])
        cls.renders = dict(zip(names, renders))

    def test_every_kubectl_renders_the_same_objects(self):
        first, *others = self.renders.items()
        for kubectl, objects in others:
            self.assertEqual(normalized(first[1]), normalized(objects),
                             f"{first[0]} and {kubectl} render {self.OVERLAY} differently")

    def test_objects_are_well_formed_and_unique(self):
        seen = set()
        for obj in self.r.objects:
            self.assertRegex(obj.get("apiVersion", ""), r"^([a-z0-9.-]+/)?v\d+((alpha|beta)\d+)?$")
            self.assertRegex(obj.get("kind", ""), r"^[A-Z][A-Za-z]+$")
            name = obj["metadata"]["name"]
            self.assertTrue(DNS_LABEL.match(name) and len(name) <= 63, name)
            self.assertNotIn((obj["kind"], name), seen)
            seen.add((obj["kind"], name))

    def test_every_container_is_locked_down(self):
        pods = [d["spec"]["template"]["spec"] for d in self.r.of("Deployment")]
        self.assertTrue(pods)
        for pod in pods:
            self.assertFalse(pod.get("automountServiceAccountToken", True))
            for container in pod["containers"]:
                sc = container.get("securityContext", {})
                with self.subTest(container=container["name"]):
                    self.assertIs(sc.get("runAsNonRoot"), True)
                    self.assertIsInstance(sc.get("runAsUser"), int)
                    self.assertGreater(sc["runAsUser"], 0)
                    self.assertIs(sc.get("readOnlyRootFilesystem"), True)
                    self.assertIs(sc.get("allowPrivilegeEscalation"), False)
                    self.assertEqual(sc.get("capabilities", {}).get("drop"), ["ALL"])
                    self.assertEqual(sc.get("seccompProfile", {}).get("type"), "RuntimeDefault")
                    self.assertIn("memory", container.get("resources", {}).get("requests", {}))

    def test_probes_use_the_admin_listener(self):
        admin = self.r.config["admin"]
        self.assertFalse(admin.get("allow_mutations", True), "off loopback the admin is read-only")
        admin_port = int(admin["listen"].rsplit(":", 1)[1])
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = self.r.container[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            self.assertEqual(self.r.port(get["port"]), admin_port)
        self.assertEqual(self.r.port("mqtts"), self.r.config["listeners"][0]["port"])

    def test_config_files_are_on_secret_or_config_map_volumes(self):
        for path in self.r.config_files():
            volume = self.r.volume_at(self.r.mount_of(path))
            self.assertTrue("secret" in volume or "configMap" in volume, path)
        tls = self.r.volume_at(self.r.mount_of(self.r.config_files()[0]))
        certificate = self.r.of("Certificate")
        self.assertEqual(len(certificate), 1)
        self.assertEqual(certificate[0]["apiVersion"], "cert-manager.io/v1")
        self.assertEqual(tls["secret"]["secretName"], certificate[0]["spec"]["secretName"])
        self.assertEqual([Path(f).name for f in self.r.config_files()[:2]], ["tls.crt", "tls.key"])

    def test_every_referenced_object_exists(self):
        made = {(o["kind"], o["metadata"]["name"]) for o in self.r.objects} | OPERATOR_MADE
        made |= {("Secret", c["spec"]["secretName"]) for c in self.r.of("Certificate")}
        for deployment in self.r.of("Deployment"):
            pod = deployment["spec"]["template"]
            self.assertTrue(selects(deployment["spec"]["selector"], pod["metadata"]["labels"]))
            names = {v["name"] for v in pod["spec"]["volumes"]}
            for container in pod["spec"]["containers"]:
                for mount in container.get("volumeMounts", []):
                    self.assertIn(mount["name"], names)
            for volume in pod["spec"]["volumes"]:
                if "configMap" in volume:
                    self.assertIn(("ConfigMap", volume["configMap"]["name"]), made)
                if "secret" in volume:
                    self.assertIn(("Secret", volume["secret"]["secretName"]), made)

    def test_shutdown_outlasts_the_drain(self):
        spec = self.r.pod["spec"]
        command = self.r.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertTrue(command[0].endswith("sleep"), command)
        drain = seconds(self.r.config["limits"]["drain_timeout"])
        self.assertGreater(spec["terminationGracePeriodSeconds"], float(command[1]) + drain)

    def test_metrics_port_is_named_and_monitored(self):
        services = [s for s in self.r.of("Service")
                    if any(p.get("name") == "metrics" for p in s["spec"]["ports"])]
        self.assertEqual(len(services), 1)
        service = services[0]
        self.assertTrue(service["metadata"]["name"].startswith("mqtls"), "alert rules' job name")
        self.assertNotEqual(service["spec"].get("type"), "LoadBalancer")
        self.assertTrue(selects(service["spec"]["selector"], self.r.pod["metadata"]["labels"]))
        port = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")
        self.assertEqual(self.r.port(port["targetPort"]), self.r.port("metrics"))
        monitors = self.r.of("ServiceMonitor")
        self.assertEqual(len(monitors), 1)
        self.assertTrue(selects(monitors[0]["spec"]["selector"], service["metadata"]["labels"]))
        endpoint = monitors[0]["spec"]["endpoints"][0]
        self.assertEqual(endpoint["port"], "metrics")
        self.assertLessEqual(seconds(endpoint["interval"]), 60)


class SidecarTest(OverlayChecks, unittest.TestCase):
    OVERLAY = "sidecar"

    def test_broker_shares_the_pod_on_loopback_only(self):
        broker = Rendered.container_named(self.r.deployment, "mosquitto")
        self.assertNotIn("ports", broker, "the broker's port is not published")
        conf_mount = next(m for m in broker["volumeMounts"]
                          if m["mountPath"] == "/mosquitto/config")
        volume = next(v for v in self.r.pod["spec"]["volumes"] if v["name"] == conf_mount["name"])
        conf = self.r.named("ConfigMap", volume["configMap"]["name"])["data"]["mosquitto.conf"]
        listeners = re.findall(r"^\s*listener\s+(.*)$", conf, re.M)
        self.assertEqual(listeners, ["1883 127.0.0.1"])
        self.assertEqual(self.r.config["upstream"], {"host": "127.0.0.1", "port": 1883})
        for service in self.r.of("Service"):
            self.assertNotIn(1883, [p["port"] for p in service["spec"]["ports"]])


class GatewayTest(OverlayChecks, unittest.TestCase):
    OVERLAY = "gateway"

    def test_replicas_behind_a_load_balancer(self):
        self.assertGreaterEqual(self.r.deployment["spec"]["replicas"], 2)
        balancers = [s for s in self.r.of("Service") if s["spec"].get("type") == "LoadBalancer"]
        self.assertEqual(len(balancers), 1)
        self.assertTrue(selects(balancers[0]["spec"]["selector"], self.r.pod["metadata"]["labels"]))
        self.assertEqual([self.r.port(p["targetPort"]) for p in balancers[0]["spec"]["ports"]],
                         [self.r.port("mqtts")])
        source = (KUSTOMIZE_DIR / "overlays" / "gateway" / "service.yaml").read_text()
        self.assertIn("PROXY protocol", source, "the Service says how PROXY protocol stands")

    def test_replicas_share_ticket_keys_from_a_secret(self):
        session = self.r.config["listeners"][0]["tls"]["session"]
        self.assertEqual(session["mode"], "tickets")
        volume = self.r.volume_at(self.r.mount_of(session["ticket_key_file"]))
        self.assertIn(("Secret", volume["secret"]["secretName"]), OPERATOR_MADE)

    def test_disruption_budget_autoscaler_and_spread(self):
        labels = self.r.pod["metadata"]["labels"]
        (pdb,) = self.r.of("PodDisruptionBudget")
        self.assertTrue(selects(pdb["spec"]["selector"], labels))
        self.assertTrue({"maxUnavailable", "minAvailable"} & set(pdb["spec"]))
        (hpa,) = self.r.of("HorizontalPodAutoscaler")
        target = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((target["kind"], target["name"]),
                         ("Deployment", self.r.deployment["metadata"]["name"]))
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
        self.assertGreater(hpa["spec"]["maxReplicas"], hpa["spec"]["minReplicas"])
        spread = self.r.pod["spec"]["topologySpreadConstraints"]
        self.assertIn("kubernetes.io/hostname", [c["topologyKey"] for c in spread])
        for constraint in spread:
            self.assertTrue(selects(constraint["labelSelector"], labels))
        resources = self.r.container["resources"]
        self.assertEqual(set(resources["requests"]), {"cpu", "memory"})
        self.assertIn("memory", resources["limits"])

    def test_only_mqtls_reaches_the_broker(self):
        upstream = self.r.config["upstream"]
        service = self.r.named("Service", upstream["host"])
        self.assertIn(upstream["port"], [p["port"] for p in service["spec"]["ports"]])
        brokers = [d for d in self.r.of("Deployment")
                   if selects(service["spec"]["selector"],
                              d["spec"]["template"]["metadata"]["labels"])]
        self.assertEqual(len(brokers), 1)
        broker_labels = brokers[0]["spec"]["template"]["metadata"]["labels"]
        policies = [p for p in self.r.of("NetworkPolicy")
                    if selects(p["spec"]["podSelector"], broker_labels)]
        self.assertEqual(len(policies), 1)
        spec = policies[0]["spec"]
        self.assertIn("Ingress", spec["policyTypes"])
        for rule in spec["ingress"]:
            for peer in rule["from"]:
                self.assertEqual(set(peer), {"podSelector"}, "no address or namespace peers")
                self.assertTrue(selects(peer["podSelector"], self.r.pod["metadata"]["labels"]))
                self.assertFalse(selects(peer["podSelector"], broker_labels))


class ConfigCheckTest(unittest.TestCase):
    """`mqtls --check` on each overlay's ConfigMap, its files laid out as kubelet lays out Secret
    and ConfigMap volumes: <mount>/..<timestamp>/<key>, ..data -> that, <key> -> ..data/<key>."""

    @classmethod
    def setUpClass(cls):
        kubectl = kubectls()[0]
        cls.rendered = {overlay: Rendered(render(kubectl, overlay)) for overlay in OVERLAYS}
        certs = Path(harness.CERTS_DIR)
        cls.files = {
            "tls.crt": (certs / "server-ec.pem").read_bytes(),
            "tls.key": (certs / "server-ec.key").read_bytes(),
            "ca.crt": (certs / "ca-bundle.pem").read_bytes(),
            "ticket-keys": base64.b64encode(os.urandom(80)) + b"\n",
        }

    def setUp(self):
        self.root = Path(tempfile.mkdtemp(prefix="mqtls-k8s-"))
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)

    @staticmethod
    def volume_tree(directory: Path, files: dict[str, bytes]):
        """Writes `files` the way kubelet's atomic writer does."""
        stamp = "..2026_12_03_00_00_00.000"
        (directory / stamp).mkdir(parents=True)
        for key, data in files.items():
            (directory / stamp / key).write_bytes(data)
            (directory / key).symlink_to(f"..data/{key}")
        (directory / "..data").symlink_to(stamp)

    def lay_out(self, overlay: str, replace: dict[str, bytes] | None = None) -> Path:
        """The overlay's mounts under a directory of their own, with the config's mount paths
        rewritten to there. Returns the config file's path."""
        r = self.rendered[overlay]
        root = self.root / overlay
        mounts = sorted(r.mounts, key=len, reverse=True)
        config = r.config_text
        for mount in mounts:
            config = config.replace(mount + "/", str(root) + mount + "/")
        self.assertNotIn(": /etc/", config, "every path in the config is on a mount")
        files_by_mount: dict[str, dict[str, bytes]] = {m: {} for m in mounts}
        for path in r.config_files():
            key = Path(path).name
            data = (replace or {}).get(key, self.files[key])
            files_by_mount[r.mount_of(path)][key] = data
        config_path = r.container["args"][r.container["args"].index("--config") + 1]
        files_by_mount[r.mount_of(config_path)][Path(config_path).name] = config.encode()
        for mount, files in files_by_mount.items():
            self.volume_tree(Path(str(root) + mount), files)
        return Path(str(root) + config_path)

    def check(self, config: Path) -> subprocess.CompletedProcess:
        return subprocess.run([harness.MQTLS_BIN, "--check", "--config", str(config)],
                              capture_output=True, text=True, timeout=30)

    def test_each_overlay_config_passes_check(self):
        for overlay in self.rendered:
            with self.subTest(overlay=overlay):
                config = self.lay_out(overlay)
                self.assertTrue(config.is_symlink(), "the config itself is behind ..data")
                run = self.check(config)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
                self.assertIn("configuration ok", run.stdout + run.stderr)

    def test_wrong_key_in_the_secret_fails_check(self):
        certs = Path(harness.CERTS_DIR)
        for overlay in self.rendered:
            with self.subTest(overlay=overlay):
                config = self.lay_out(overlay, {"tls.key": (certs / "client.key").read_bytes()})
                run = self.check(config)
                self.assertNotEqual(run.returncode, 0, run.stdout + run.stderr)
                self.assertIn("tls.key", run.stdout + run.stderr)


if __name__ == "__main__":
    unittest.main()

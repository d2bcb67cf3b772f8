"""The monitoring files in deploy/: the Prometheus alert rules pass promtool's checks and their
own unit tests, the Grafana dashboard is well formed, and every metric an alert or a dashboard
query names is one the real mqtls binary exports (read from its /metrics, not from a list).

Environment (set by ctest): MQTLS_PROMTOOL, plus the integration tests' MQTLS_BIN,
MQTLS_CERTS_DIR and MQTLS_MOSQUITTO.
"""

import json
import os
import re
import subprocess
import sys
import unittest
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import harness  # noqa: E402
from harness import IntegrationTest, cert, pub  # noqa: E402

SOURCE_DIR = Path(__file__).resolve().parents[2]
ALERTS = SOURCE_DIR / "deploy" / "prometheus" / "alerts.yaml"
ALERTS_TEST = SOURCE_DIR / "deploy" / "prometheus" / "alerts_test.yaml"
DASHBOARD = SOURCE_DIR / "deploy" / "grafana" / "mqtls-dashboard.json"
PROMTOOL = os.environ.get("MQTLS_PROMTOOL") or "promtool"

# Series Prometheus itself makes for every scrape target, not exported by mqtls.
PROMETHEUS_SERIES = {"up"}

# prometheus-cpp prints no # HELP / # TYPE line for a family until its first series exists
# (checked below), so these families, whose series only an event the test does not provoke
# creates (their labels name the event), are accepted by name. Each must be registered under
# that name in proxy/.
EVENT_ONLY = {
    # Refused at accept (before TLS), e.g. limits.max_connections reached.
    "mqtls_connections_rejected_total": "a connection refused at accept",
    # Only when dialling the broker fails.
    "mqtls_upstream_connect_failures_total": "a failed connect to the broker",
    # Only on listeners with OCSP checking configured.
    "mqtls_ocsp_checks_total": "an OCSP check",
}

ALERT_NAMES = {
    "MqtlsCertificateExpiringSoon", "MqtlsCrlStale", "MqtlsReloadFailing",
    "MqtlsHandshakeFailureRatioHigh", "MqtlsBrokerUnreachable", "MqtlsConnectionsNearLimit",
    "MqtlsDown",
}

PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "by",
                "without", "on", "ignoring", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana query using $variables) selects.
    Strings, label matchers, ranges, grouping clauses and variables are removed first; what is
    left that is neither a function call, a keyword nor part of a number is a metric name."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.groups()
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def yaml_exprs(text: str) -> list[str]:
    """Every `expr:` value of a Prometheus rule file: plain, quoted or a block scalar (| or >)."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        match = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", lines[i])
        i += 1
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2).strip()
        if value[:1] in ("|", ">"):
            block = []
            while i < len(lines) and (not lines[i].strip()
                                      or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            out.append(" ".join(block).strip())
        elif value.startswith('"'):
            out.append(json.loads(value))
        elif value.startswith("'"):
            out.append(value[1:-1].replace("''", "'"))
        else:
            out.append(value)
    return out


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of a Grafana dashboard;
    label_values(selector, label) variables give their selector."""
    out = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((f"panel {panel['title']!r} target {target['refId']}",
                            target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", query)
        out.append((f"variable {variable['name']}", match.group(1) if match else query))
    return out


def exported_names(text: str) -> tuple[set[str], set[str]]:
    """(names a scrape can hold, names with a sample now) from Prometheus text exposition: each
    # TYPE line gives its name, a histogram also name_bucket, _sum and _count, a summary _sum
    and _count."""
    typed, sampled = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            typed.add(name)
            if kind in ("histogram", "summary"):
                typed |= {f"{name}_sum", f"{name}_count"}
            if kind == "histogram":
                typed.add(f"{name}_bucket")
        elif line and not line.startswith("#"):
            sampled.add(harness.METRIC_LINE.match(line).group(1))
    return typed, sampled


def promtool(*args: str) -> subprocess.CompletedProcess:
    if not (os.path.isfile(PROMTOOL) or "/" not in PROMTOOL):
        raise AssertionError(f"promtool not found at {PROMTOOL}: run scripts/setup.sh")
    try:
        return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise AssertionError(f"promtool not found ({PROMTOOL}): run scripts/setup.sh") from None


class ParserTest(unittest.TestCase):
    """The helpers the checks below rely on find what they must (and nothing else)."""

    def test_metric_names_skip_labels_functions_ranges_and_variables(self):
        expr = ('sum by (job, le) (rate(a_bucket{x="y{z}", le!="1", job=~"$job"}[$__rate_interval]'
                ' offset 5m)) / on (job) group_left (zone) b:rule > 1e3 and '
                'max_over_time((timestamp(c_total > 0) - 120)[6h:1m]) unless time() - d < 14 * 86400')
        self.assertEqual(metric_names(expr), {"a_bucket", "b:rule", "c_total", "d"})
        self.assertEqual(metric_names('up{job=~"mqtls.*"} == 0'), {"up"})

    def test_yaml_exprs_reads_every_form(self):
        text = ("- alert: A\n  expr: a > 1\n- alert: B\n  expr: |\n    b\n    > 2\n  for: 1m\n"
                "- alert: C\n  expr: \"c{x=\\\"y\\\"} > 3\"\n- alert: D\n  expr: 'd > 4'\n")
        self.assertEqual(yaml_exprs(text), ["a > 1", "b > 2", 'c{x="y"} > 3', "d > 4"])

    def test_exported_names_expand_histograms(self):
        typed, sampled = exported_names(
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE c counter\n"
            "c_total 1\n# TYPE e gauge\n")
        self.assertEqual(typed, {"h", "h_bucket", "h_sum", "h_count", "c", "e"})
        self.assertEqual(sampled, {"h_bucket", "c_total"})


class AlertRulesTest(unittest.TestCase):
    def test_rules_pass_promtool_check(self):
        result = promtool("check", "rules", str(ALERTS))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        found = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
        self.assertIsNotNone(found, result.stdout)
        # Every rule's expression is seen by the metric-name check below.
        self.assertEqual(int(found.group(1)), len(yaml_exprs(ALERTS.read_text())))

    def test_rules_pass_their_unit_tests(self):
        result = promtool("test", "rules", str(ALERTS_TEST))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SUCCESS", result.stdout)

    def test_every_alert_is_defined_and_unit_tested(self):
        text = ALERTS.read_text()
        self.assertEqual(set(re.findall(r"- alert: (\w+)", text)), ALERT_NAMES)
        tested = ALERTS_TEST.read_text()
        for name in ALERT_NAMES:
            # Each alert has at least one evaluation expecting it to fire.
            self.assertRegex(tested, rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels",
                             f"{name} never fires in alerts_test.yaml")

    def test_every_alert_has_a_severity_and_a_runbook(self):
        blocks = re.split(r"\n\s+- alert: ", ALERTS.read_text())[1:]
        self.assertEqual(len(blocks), len(yaml_exprs(ALERTS.read_text())))
        for block in blocks:
            name = block.split("\n", 1)[0]
            self.assertRegex(block, r"severity: (warning|critical)\n", name)
            self.assertIn("summary:", block, name)
            self.assertRegex(block, r"description: >-\n\s+Runbook: ", name)


class DashboardTest(unittest.TestCase):
    def setUp(self):
        self.dashboard = json.loads(DASHBOARD.read_text())

    def test_dashboard_uses_the_datasource_and_job_instance_variables(self):
        self.assertGreaterEqual(self.dashboard["schemaVersion"], 36)
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["DS_PROMETHEUS"]["type"], "datasource")
        self.assertEqual(variables["DS_PROMETHEUS"]["query"], "prometheus")
        self.assertEqual({variables["job"]["type"], variables["instance"]["type"]}, {"query"})
        ids = [panel["id"] for panel in self.dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for panel in self.dashboard["panels"]:
            if panel["type"] == "row":
                continue
            self.assertEqual(panel["datasource"]["uid"], "${DS_PROMETHEUS}", panel["title"])
            self.assertTrue(panel["targets"], panel["title"])
            for target in panel["targets"]:
                self.assertEqual(target["datasource"]["uid"], "${DS_PROMETHEUS}", panel["title"])
                # Every query is narrowed to the chosen job and instance, or is time() alone.
                for selector in re.findall(r"\b[a-z_:]+\{[^}]*\}", target["expr"]):
                    self.assertIn('job=~"$job", instance=~"$instance"', selector, panel["title"])

    def test_dashboard_covers_what_an_operator_watches(self):
        named = set().union(*(metric_names(q) for _, q in dashboard_queries(self.dashboard)))
        for name in ("mqtls_connections_open", "mqtls_connections_accepted_total",
                     "mqtls_tls_handshakes_total", "mqtls_mqtt_connects_total",
                     "mqtls_forwarded_bytes_total", "mqtls_upstream_ready",
                     "mqtls_certificate_not_after_timestamp_seconds", "mqtls_tls_reloads_total",
                     "mqtls_ocsp_checks_total"):
            self.assertIn(name, named)


class ExportedMetricsTest(IntegrationTest):
    """Runs mqtls with a real Mosquitto, pushes a good client, a client whose certificate has
    no identity and one from an unknown CA through, and reads /metrics."""

    def scrape(self, proxy) -> str:
        with urllib.request.urlopen(proxy.metrics_url, timeout=10) as response:
            return response.read().decode()

    def test_every_metric_named_in_alerts_and_dashboard_is_exported(self):
        broker = self.start_broker()
        config = self.proxy_config(broker.port)
        config["listeners"][0]["tls"]["crl"] = [cert("crl.pem")]
        proxy = self.start_proxy(config)

        result = pub(proxy.port, "devices/device-001/metrics", "hello", args=["-q", "1"])
        self.assertEqual(result.returncode, 0, result.stderr)
        for identity in ("client-nocn", "client-wrongca"):  # refused by identity, by TLS
            result = pub(proxy.port, "devices/x/metrics", "refused", identity=identity)
            self.assertNotEqual(result.returncode, 0, identity)
        proxy.wait_metric("mqtls_connections_closed_total", at_least=3)
        typed, sampled = exported_names(self.scrape(proxy))

        # Every sample belongs to a family announced by a # TYPE line.
        self.assertEqual(sampled - typed, set())
        # An event-only family is registered under that name in the code, yet absent from this
        # scrape: families without a series are not printed, which is why EVENT_ONLY exists.
        sources = "".join(p.read_text() for p in (SOURCE_DIR / "proxy").rglob("*.[ch]*"))
        for name in EVENT_ONLY:
            self.assertIn(f'"{name}"', sources, f"{name} is not registered in proxy/")
            self.assertNotIn(name, typed, f"{name} is exported now: remove it from EVENT_ONLY")
        available = typed | PROMETHEUS_SERIES | set(EVENT_ONLY)

        named = {}
        rules = ALERTS.read_text()
        for alert, expr in zip(re.findall(r"- alert: (\w+)", rules), yaml_exprs(rules)):
            for name in metric_names(expr):
                named.setdefault(name, []).append(f"alert {alert}")
        for where, expr in dashboard_queries(json.loads(DASHBOARD.read_text())):
            for name in metric_names(expr):
                named.setdefault(name, []).append(f"dashboard {where}")
        self.assertGreater(len(named), 20)
        missing = sorted(name for name in named if name not in available)
        if missing:
            self.fail("named in deploy/ but not exported by mqtls:\n" + "\n".join(
                f"  {name}  (used by {', '.join(named[name])})" for name in missing))


if __name__ == "__main__":
    unittest.main()

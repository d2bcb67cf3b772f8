"""The configuration reference (docs/configuration.md) cannot drift from the loader or from
config/mqtls.example.yaml.

Three sets of key paths are compared. A key path names a key from the top of the file, with
'.' between a section and its keys and '[]' for "each item of a list", e.g.
listeners[].tls.session.mode.

- Loader keys: asked of the real binary (MQTLS_BIN), not copied by hand. `mqtls --check` answers
  a key it does not know with "unknown key 'x'; remove it (known keys here: a, b, ...)", read
  from the same table the loader checks with. Starting at the top, the test gives every section
  one unknown key and reads its known keys; then it gives every known key a map holding one
  unknown key (and, when that does not make it answer with known keys, a list of such maps): a
  key whose value answers that way is a section (or a list of sections) and is explored the same
  way. This was chosen over parsing the C++ tables because it asks the code that runs, follows
  whatever nesting the loader has (SNI sites, their identity, certificates lists), and keeps
  working when the reader code is reorganised; it costs a few dozen `--check` runs of ~15 ms.
- Documented keys: the first cell of every table row of docs/configuration.md that is a key
  path in backquotes ("| `listeners[].tls.cert` | ..."). A row whose text says "same keys as
  `Q`" documents, besides its own key P, every documented key under Q again under P; the test
  then also checks that the loader accepts exactly the same keys under P as under Q.
- Example keys: every key path in config/mqtls.example.yaml. The example shows optional keys
  as commented-out YAML; the rule for those: a commented-out YAML block is a run of comment
  lines whose '#' is followed by at least three spaces, starting with a line whose text there is
  'name:' or '- name:' or '- {' (lower-case names only, so prose such as '#   - Durations:' is
  not taken), and continuing while the '#' stays in the same column and is followed by three
  spaces. Blocks before the first YAML key (the header prose) are ignored. A block that is a
  map belongs to the map whose keys sit in the same column as its '#' (the one that holds the
  nearest key above it in that column); a block that is a list holds the items of the nearest
  key above it in that column. Each block must be valid YAML. Keys are followed into nested
  maps only where the loader has a section (user_properties maps certificate fields to names:
  those are values, not keys).

Checks: example keys are documented; loader keys are documented; documented keys are loader
keys (a documented key the binary rejects as unknown fails). And, to show the probing can fail,
a key path the loader does not know is not among the loader keys.
"""

import os
import re
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

SOURCE_DIR = Path(__file__).resolve().parents[2]
REFERENCE = SOURCE_DIR / "docs" / "configuration.md"
EXAMPLE = SOURCE_DIR / "config" / "mqtls.example.yaml"
MQTLS_BIN = os.environ.get("MQTLS_BIN", "mqtls")

PROBE = "zzqqxxvvww"  # far (edit distance > 3) from every key, so no "did you mean"
KNOWN_RE = re.compile(r": (\S+): unknown key '" + PROBE + r"'; remove it \(known keys here: ([^)]*)\)")
ROW_RE = re.compile(r"^\|\s*`([a-z_][a-z0-9_.\[\]]*)`\s*\|(.*)$", re.M)
ALIAS_RE = re.compile(r"same keys as `([a-z_][a-z0-9_.\[\]]*)`")


def under(keys, prefix):
    """The keys below `prefix`, with `prefix` cut off (".a", "[].b")."""
    return {k[len(prefix):] for k in keys if k.startswith(prefix + ".") or
            k.startswith(prefix + "[")}


def path_text(steps):
    """The error-message form of a location: listeners[0].tls.session."""
    out = ""
    for step in steps:
        out += "[0]" if step is None else ("." if out else "") + step
    return out


def doc_path(steps):
    """The reference form of a location: listeners[].tls.session."""
    return path_text(steps).replace("[0]", "[]")


def nest(steps, value):
    """A configuration holding `value` at `steps` (None = the first item of a list)."""
    for step in reversed(steps):
        value = [value] if step is None else {step: value}
    return value


class Loader:
    """Runs `mqtls --check` on generated configurations and reads the known-key lists."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.runs = 0

    def known(self, config):
        """{error path of the section: [its known keys]} from every unknown-key error."""
        self.runs += 1
        path = self.workdir / f"probe{self.runs}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        out = subprocess.run([MQTLS_BIN, "--check", "--config", str(path)], capture_output=True,
                             text=True, timeout=30)
        if out.returncode == 0:
            raise AssertionError(f"mqtls --check accepted a probe with unknown keys: {config}")
        found = {}
        for line in (out.stdout + out.stderr).splitlines():
            if m := KNOWN_RE.search(line):
                section = m.group(1)[: -len(PROBE)].rstrip(".")
                found[section] = [k.strip() for k in m.group(2).split(",")]
        return found

    def keys(self):
        """Every key path the loader accepts, sections included."""
        top = self.known({PROBE: 1}).get("")
        if not top:
            raise AssertionError("mqtls --check did not list the known top-level keys")
        paths = set()
        pending = [([], top)]
        while pending:
            steps, names = pending.pop()
            paths.update(doc_path(steps + [n]) for n in names)
            # First as maps, then (the keys that were not maps) as lists of maps.
            for as_list in (False, True):
                probe = [{PROBE: 1}] if as_list else {PROBE: 1}
                found = self.known(nest(steps, {PROBE: 1, **{n: probe for n in names}}))
                rest = []
                for name in names:
                    child = steps + [name] + ([None] if as_list else [])
                    if path_text(child) in found:
                        pending.append((child, found[path_text(child)]))
                    else:
                        rest.append(name)
                names = rest
        return paths


def example_keys(text, is_section):
    """Key paths of the example file, commented-out blocks included (see the module docstring).
    `is_section(path)` tells whether the loader reads the map at `path` as keys."""
    lines = text.splitlines()
    keys_at = {}  # line number -> (column, key path steps) of every uncommented key

    def walk(node, steps):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = steps + [key.value]
                keys_at[key.start_mark.line] = (key.start_mark.column, here)
                if is_section(doc_path(here)) or is_section(doc_path(here + [None])):
                    walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, steps + [None])

    walk(yaml.compose(text), [])
    found = {doc_path(steps) for _, steps in keys_at.values()}
    first_key = min(keys_at)
    start_re = re.compile(r"^(\s*)#   (- )?([a-z_][a-z0-9_]*:|\{)")
    i = 0
    while i < len(lines):
        m = start_re.match(lines[i])
        if i < first_key or not m:
            i += 1
            continue
        column = len(m.group(1))
        prefix = lines[i][: column] + "#   "
        block = []
        while i < len(lines) and lines[i].startswith(prefix):
            block.append(lines[i][len(prefix):])
            i += 1
        value = yaml.safe_load("\n".join(block))
        above = [keys_at[n] for n in sorted(keys_at) if n < i - len(block)]
        same_column = [steps for col, steps in above if col == column]
        if not same_column:
            raise AssertionError(f"no key above line {i - len(block) + 1} in column {column}")
        anchor = same_column[-1]
        steps = anchor + [None] if isinstance(value, list) else anchor[:-1]
        found.update(value_keys(value, steps, is_section))
    return found


def value_keys(value, steps, is_section):
    """Key paths inside a parsed YAML value placed at `steps`."""
    out = set()
    if isinstance(value, list):
        for item in value:
            out |= value_keys(item, steps if steps and steps[-1] is None else steps + [None],
                              is_section)
    elif isinstance(value, dict):
        for key, child in value.items():
            here = steps + [str(key)]
            out.add(doc_path(here))
            if is_section(doc_path(here)) or is_section(doc_path(here + [None])):
                out |= value_keys(child, here, is_section)
    return out


class ConfigReferenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with tempfile.TemporaryDirectory() as workdir:
            loader = Loader(workdir)
            cls.loader_keys = loader.keys()
            cls.probe_runs = loader.runs
        cls.sections = set()
        for key in cls.loader_keys:
            parts = key.split(".")
            for n in range(1, len(parts)):
                cls.sections.add(".".join(parts[:n]))
        rows = ROW_RE.findall(REFERENCE.read_text())
        cls.documented = [key for key, _ in rows]
        cls.aliases = [(key, m.group(1)) for key, text in rows if (m := ALIAS_RE.search(text))]
        cls.covered = set(cls.documented)
        while True:  # until no alias adds a key (aliases may nest: admin.tls holds sni[].identity)
            more = {key + rest for key, same_as in cls.aliases
                    for rest in under(cls.covered, same_as)} - cls.covered
            if not more:
                break
            cls.covered |= more
        cls.example = example_keys(EXAMPLE.read_text(), lambda p: p in cls.sections)

    def test_probing_finds_the_nested_sections(self):
        # Sanity: the walk reached lists of sections and sections inside them.
        for key in ("workers", "listeners[].tls.session.mode", "listeners[].tls.sni[].names",
                    "listeners[].tls.sni[].identity.username_from",
                    "listeners[].tls.certificates[].cert", "listeners[].tls.ocsp.mode"):
            self.assertIn(key, self.loader_keys)
        self.assertNotIn("listeners[].tls.no_such_key", self.loader_keys)
        self.assertNotIn("identity.user_properties.cn", self.loader_keys)

    def test_reference_has_one_row_per_key(self):
        self.assertGreater(len(self.documented), 50, "no key table found in " + str(REFERENCE))
        repeated = sorted({k for k in self.documented if self.documented.count(k) > 1})
        self.assertEqual(repeated, [], "keys with more than one row in docs/configuration.md")

    def test_every_example_key_is_documented(self):
        self.assertIn("listeners[].tls.certificates[].cert", self.example)  # a commented block
        self.assertIn("listeners[].tls.sni[].identity.username_from", self.example)
        missing = sorted(self.example - self.covered)
        self.assertEqual(missing, [], "keys of config/mqtls.example.yaml missing from "
                         "docs/configuration.md: add a table row for each")

    def test_every_loader_key_is_documented(self):
        missing = sorted(self.loader_keys - self.covered)
        self.assertEqual(missing, [], "keys the loader accepts missing from "
                         "docs/configuration.md: add a table row for each")

    def test_every_documented_key_is_accepted(self):
        unknown = sorted(self.covered - self.loader_keys)
        self.assertEqual(unknown, [], "keys in docs/configuration.md that mqtls rejects as "
                         "unknown: remove or correct them")

    def test_same_keys_as_holds(self):
        for key, same_as in self.aliases:
            with self.subTest(key=key):
                self.assertIn(same_as, self.documented, "'same keys as' names an undocumented key")
                self.assertEqual(under(self.loader_keys, key), under(self.loader_keys, same_as),
                                 f"the loader does not accept the same keys under {key} as "
                                 f"under {same_as}")

    def test_every_example_key_is_accepted(self):
        unknown = sorted(self.example - self.loader_keys)
        self.assertEqual(unknown, [], "keys in config/mqtls.example.yaml that mqtls rejects")


if __name__ == "__main__":
    unittest.main()

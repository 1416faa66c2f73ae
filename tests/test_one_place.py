"""Every default has one home: a port written as a number (or in a string such as
``0.0.0.0:18000``) anywhere in the packages but ``atlas/config.py`` (Atlas's and the Envoys'
ports) and ``atlas/model.py`` (the ports of what a downstream runs: Thanos, Prometheus,
Alertmanager) is a second copy, which would drift. Docstrings may name them."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

from atlas.config import DEFAULT_ADS_PORT, DEFAULT_DNS_PORT, DEFAULT_HTTP_PORT, Settings
from atlas.model import DEFAULT_ALERTMANAGER, DEFAULT_PROMETHEUS, DEFAULT_THANOS
from tests.conftest import ROOT

PACKAGES = ("atlas", "watchers", "xds_server", "dns_server")
HOMES = {ROOT / "atlas" / "config.py", ROOT / "atlas" / "model.py"}


def ports() -> set[int]:
    settings = Settings()
    found = {DEFAULT_ADS_PORT, DEFAULT_DNS_PORT, DEFAULT_HTTP_PORT}
    for group in (settings.observability_ports, settings.downstream_ports):
        found |= {getattr(group, f.name) for f in fields(group)}
    found |= {settings.envoy.admin_port, settings.envoy.metrics_port}
    return found | {u.port for u in (DEFAULT_THANOS, DEFAULT_PROMETHEUS, DEFAULT_ALERTMANAGER)}


def _docstrings(tree: ast.AST) -> set[int]:
    """Ids of the string constants that are docstrings (of modules, classes, functions and
    attributes: any string standing alone as a statement)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def copies(path: Path, wanted: set[int], root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = _docstrings(tree)
    pattern = re.compile(r"(?<![\d.])(" + "|".join(map(str, sorted(wanted))) + r")(?![\d])")
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in docs:
            continue
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value in wanted:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {value}")
        elif isinstance(value, str) and pattern.search(value):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {value!r}")
    return found


def test_no_port_is_written_outside_its_home() -> None:
    wanted = ports()
    found = [
        hit
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path not in HOMES
        for hit in copies(path, wanted)
    ]
    assert found == [], "ports written outside atlas/config.py and atlas/model.py:\n" + "\n".join(
        found
    )


def test_the_check_finds_a_copy(tmp_path: Path) -> None:
    """It fails when it should: a port as a number, in a string, not in a docstring."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""Names 10900 in a docstring."""\nPORT = 10900\nLISTEN = "0.0.0.0:9180"\n')
    assert copies(sample, ports(), root=tmp_path) == [
        "sample.py:2: 10900",
        "sample.py:3: '0.0.0.0:9180'",
    ]

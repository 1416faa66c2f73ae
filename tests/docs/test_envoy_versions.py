"""The supported Envoy range is declared once in words (README) and every place that pins an
Envoy agrees with it: the oldest is what .ci/oldest-envoy tests, the newest what the charts
install and the wheel the suite runs."""

from __future__ import annotations

import os
import re
import subprocess

import yaml

from atlas.demo.launch import ENVOY_VARIABLE, find_envoy
from tests.conftest import ROOT


def declared() -> tuple[str, str]:
    found = re.search(r"Envoy \*\*(\d+\.\d+) to (\d+\.\d+)\*\*", (ROOT / "README.md").read_text())
    assert found, "README declares no Envoy range"
    return found[1], found[2]


def test_the_oldest_supported_envoy_is_the_one_the_oldest_job_runs() -> None:
    oldest, _ = declared()
    job = (ROOT / ".ci" / "oldest-envoy").read_text()
    assert re.search(rf"^OLDEST={re.escape(oldest)}\.\d+$", job, re.MULTILINE)


def test_the_newest_is_what_the_charts_install_and_the_suite_runs() -> None:
    _, newest = declared()
    atlas = yaml.safe_load((ROOT / "charts" / "atlas" / "values.yaml").read_text())
    envoy = yaml.safe_load((ROOT / "charts" / "envoy" / "values.yaml").read_text())
    for tag in (atlas["envoy"]["image"]["tag"], envoy["image"]["tag"]):
        assert tag.startswith(f"v{newest}."), tag
    text = subprocess.run([find_envoy(), "--version"], capture_output=True, text=True).stdout
    found = re.search(r"/(\d+)\.(\d+)\.\d+/", text)
    assert found, text
    running = (int(found[1]), int(found[2]))
    if os.environ.get(ENVOY_VARIABLE):  # .ci/oldest-envoy: any supported one
        oldest = declared()[0]
        assert _pair(oldest) <= running <= _pair(newest), text
    else:
        assert running == _pair(newest), text


def _pair(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)

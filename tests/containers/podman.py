"""Podman for the tests: the settings tests/prepare.sh wrote for this machine, and the image
it built from this checkout (never built from inside a test)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

CONF = Path(os.environ.get("ATLAS_PODMAN_HOME", Path.home() / ".cache" / "atlas-podman"))


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


IMAGE = f"localhost/atlas:{version()}"


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    if shutil.which("podman") is None or not (CONF / "containers.conf").exists():
        pytest.fail("Podman and its settings are missing: run `bash tests/prepare.sh`")
    env = {**os.environ, "CONTAINERS_CONF": str(CONF / "containers.conf")}
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr[-2000:]}")
    return result


def require_image() -> str:
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail(f"{IMAGE} is missing: tests/prepare.sh builds it (packaging/build-image.sh)")
    return IMAGE

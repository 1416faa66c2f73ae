"""The Atlas image (built by tests/prepare.sh with packaging/build-image.sh, under Podman): it
runs `atlas` as its fixed non-root UID on a read-only root filesystem, with no compiler."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.containers.podman import podman, require_image, version

pytestmark = pytest.mark.e2e


def shell(image: str, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by the image's ``sh``, with no network."""
    return podman(
        "run", "--rm", *flags, "--network", "none", "--entrypoint", "sh", image, "-c", script
    )


def test_atlas_runs_as_non_root_on_a_read_only_root() -> None:
    image = require_image()
    ran = podman("run", "--rm", "--read-only", "--network", "none", image, "--version")
    assert ran.stdout.strip() == f"atlas {version()}", "the image is built from this checkout"
    probe = shell(
        image,
        "id -u; echo $HOME $TMPDIR; touch / 2>/dev/null && echo writable || echo read-only",
        "--read-only",
    )
    uid, dirs, root = probe.stdout.split("\n")[:3]
    assert uid == "10001" and dirs == "/var/lib/atlas /tmp" and root == "read-only"


def test_no_compiler_or_build_tool_is_in_the_image() -> None:
    image = require_image()
    found = shell(
        image, "for t in gcc cc c++ g++ clang make ld pip pip3; do command -v $t; done; true"
    )
    assert found.stdout.strip() == ""


def test_entrypoint_labels_and_defaults() -> None:
    image = require_image()
    (meta,) = json.loads(podman("image", "inspect", image).stdout)
    config = meta["Config"]
    assert config["Entrypoint"] == ["atlas"]
    assert config["Cmd"] == ["serve", "--source", "kubernetes"]
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == version()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")

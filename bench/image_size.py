"""The Atlas image's size (tests/prepare.sh builds it with packaging/build-image.sh), and what
fills it: the base and the virtual environment with Atlas and its dependencies.

    .venv/bin/python -m bench.image_size

Prints the figures and writes them to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

from bench.report import write_section

ROOT = Path(__file__).resolve().parent.parent
CONF = Path(os.environ.get("ATLAS_PODMAN_HOME", Path.home() / ".cache" / "atlas-podman"))


def mb(n: int | str) -> str:
    return f"{int(n) / 1e6:.0f} MB"


def podman(*args: str) -> str:
    env = {**os.environ, "CONTAINERS_CONF": str(CONF / "containers.conf")}
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=True, env=env
    ).stdout


def size(image: str) -> int:
    return int(json.loads(podman("image", "inspect", image))[0]["Size"])


def main() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    image, base = f"localhost/atlas:{version}", "localhost/atlas-base:bookworm"
    total, base_size = size(image), size(base)
    venv = podman("run", "--rm", "--entrypoint", "du", image, "-sb", "/opt/atlas").split()[0]
    biggest = podman(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "du -sb /opt/atlas/lib/python3*/site-packages/* | sort -rn | head -5",
    )
    rows = [
        ("the image (`localhost/atlas`, on the debootstrap base)", mb(total)),
        ("its base: Debian bookworm minbase + python3, python3-venv", mb(base_size)),
        ("the virtual environment `/opt/atlas` (Atlas and its dependencies)", mb(venv)),
    ]
    body = "| part | size |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    largest = [line.split() for line in biggest.splitlines() if line.strip()]
    body += (
        "\nLargest packages: " + ", ".join(f"{Path(p).name} {mb(n)}" for n, p in largest) + ".\n"
    )
    body += (
        "\nThe Dockerfile's default base, the official `python:3.11-slim-bookworm`, cannot be "
        "pulled here (no registry), so it is not measured; the virtual environment is the "
        "same on it.\n"
    )
    print(body)
    write_section("Container image (bench/image_size.py)", body)


if __name__ == "__main__":
    main()

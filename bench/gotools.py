"""Where the Go tools (tests/go: the Thanos Query-exact client, the grpc-go sidecar, the delay
proxy, the tunnel client) are found once ``tests/go/build.sh`` built them: the benchmarks and
the tests run the same binaries."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUILD", "go_tool", "go_tool_path"]

BUILD = Path(__file__).resolve().parent.parent / "tests" / "go" / "build.sh"


def go_tool_path(name: str) -> Path:
    """The binary ``name``, whether or not it was built (``ATLAS_GO_HOME`` overrides the
    cache it is built into)."""
    home = Path(os.environ.get("ATLAS_GO_HOME", Path.home() / ".cache" / "atlas-go"))
    return home / "bin" / name


def go_tool(name: str) -> str:
    """The binary ``name``; FileNotFoundError with the command that builds it if missing."""
    path = go_tool_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build the Go tools with `bash {BUILD}`")
    return str(path)

"""The Go test tools (tests/go): a Thanos Query-exact client and a grpc-go Thanos sidecar.

They are built by ``tests/prepare.sh`` (``tests/go/build.sh``), never from inside a test: a
missing binary fails the test with the command that builds it.
"""

from __future__ import annotations

import pytest

from bench.gotools import BUILD, go_tool_path


def go_tool(name: str) -> str:
    path = go_tool_path(name)
    if not path.is_file():
        pytest.fail(f"{path} is missing: build the Go test tools with `bash {BUILD}`")
    return str(path)

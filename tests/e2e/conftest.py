from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.network import AtlasNetwork


@contextmanager
def running_network(root: Path, **options: Any) -> Iterator[AtlasNetwork]:
    """Start an AtlasNetwork; print every part's log tail if anything fails; always stop it."""
    net = AtlasNetwork(root, **options)
    try:
        net.start()
        yield net
    except BaseException:
        print(net.logs())
        raise
    finally:
        net.stop()


@pytest.fixture(scope="module", params=["GRPC", "DELTA_GRPC"], ids=["sotw", "delta"])
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AtlasNetwork]:
    """Python test sidecars (tests/fakes/thanos.py)."""
    root: Path = tmp_path_factory.mktemp(f"net-{request.param.lower()}")
    with running_network(root, api_type=request.param) as net:
        yield net


@pytest.fixture(scope="module", params=["GRPC", "DELTA_GRPC"], ids=["sotw", "delta"])
def go_network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AtlasNetwork]:
    """grpc-go sidecars (tests/go), with grpc-go's own keepalive enforcement."""
    root: Path = tmp_path_factory.mktemp(f"gonet-{request.param.lower()}")
    with running_network(root, api_type=request.param, sidecars="go") as net:
        yield net

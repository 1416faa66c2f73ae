from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.network import AtlasNetwork


@pytest.fixture(scope="module", params=["GRPC", "DELTA_GRPC"], ids=["sotw", "delta"])
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AtlasNetwork]:
    root: Path = tmp_path_factory.mktemp(f"net-{request.param.lower()}")
    net = AtlasNetwork(root, api_type=request.param)
    try:
        net.start()
        yield net
    except BaseException:
        print(net.logs())
        raise
    finally:
        net.stop()

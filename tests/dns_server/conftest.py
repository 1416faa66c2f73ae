from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dns_server.live import LiveDns


@pytest.fixture
def live() -> Iterator[LiveDns]:
    server = LiveDns()
    try:
        yield server
    finally:
        server.stop()

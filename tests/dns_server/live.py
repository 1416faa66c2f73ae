"""A DnsServer on its own event loop in a thread, so blocking clients (dig, unbound,
dnspython) can query it from the test."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from atlas.model import DownstreamCluster, Topology
from dns_server.server import DnsServer

ADDRESSES = ("127.0.0.1", "::1")
T = TypeVar("T")


class _Recorder(logging.Handler):
    """Keeps the records it is handed (the DNS server's errors, which a test must not see)."""

    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


def fleet(n: int, replicas: int = 2) -> Topology:
    return Topology(
        tuple(
            DownstreamCluster(
                f"c{i:03d}", "192.0.2.1", replicas=replicas, group="even" if i % 2 == 0 else "odd"
            )
            for i in range(n)
        )
    )


class LiveDns:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = DnsServer()
        self.port = self.call(self.server.start("127.0.0.1", 0))
        self.failures: list[logging.LogRecord] = []
        handler = _Recorder(self.failures)
        handler.setLevel(logging.ERROR)
        logging.getLogger("dns_server").addHandler(handler)
        self._handler = handler

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def update(self, topology: Topology, addresses: tuple[str, ...] = ADDRESSES) -> None:
        async def apply() -> None:
            self.server.update(topology, addresses)

        self.call(apply())

    def stop(self) -> None:
        logging.getLogger("dns_server").removeHandler(self._handler)
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

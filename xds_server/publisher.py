"""Topology changes → debounced snapshot builds → the cache.

Bursts of watch events collapse into one build: a build starts ``delay`` after the last event,
but never later than ``max_delay`` after the first one still waiting. A build that fails its
consistency check is logged and the cache keeps serving the last good snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from atlas.config import Settings
from atlas.errors import AtlasError
from atlas.model import Topology
from atlas.waiting import wait_event
from xds_server import metrics
from xds_server.builders import Build, NodeCredentials, build, node_ids
from xds_server.cache import SnapshotCache

__all__ = ["CredentialSource", "SnapshotPublisher", "collector_paused"]

log = logging.getLogger(__name__)

CredentialSource = Callable[[Iterable[str]], Mapping[str, NodeCredentials]]
"""Blocking (PKI I/O): run in a thread. Returns credentials for the given node ids."""


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a build runs.

    A cold build at 10,000 clusters allocates about a million objects that all survive, so the
    collector would walk the growing heap again and again (a third of the build's time). The
    builders create no reference cycles, so nothing is lost by pausing it; the daemon freezes
    the result afterwards so later collections skip it too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SnapshotPublisher:
    def __init__(
        self,
        cache: SnapshotCache,
        settings: Settings,
        credentials: CredentialSource,
        *,
        delay: float = 0.05,
        max_delay: float = 0.5,
        refresh_interval: float = 300.0,
    ) -> None:
        self.cache = cache
        self.settings = settings
        self.credentials = credentials
        self.delay = delay
        self.max_delay = max_delay
        self.refresh_interval = refresh_interval
        """Rebuild this often even without changes, so renewed leaves reach Envoy over SDS."""
        self._topology: Topology | None = None
        self._wake = asyncio.Event()
        self._first_pending: float | None = None
        self.builds = 0
        self._last: Build | None = None
        """The last published build: the next one only redoes what changed since."""
        self.published: asyncio.Event = asyncio.Event()

    def poke(self) -> None:
        """Rebuild even though the topology is unchanged (credentials or CA changed)."""
        if self._topology is not None:
            if self._first_pending is None:
                self._first_pending = time.monotonic()
            self._wake.set()

    def update(self, topology: Topology) -> None:
        if topology == self._topology:
            return
        self._topology = topology
        if self._first_pending is None:
            self._first_pending = time.monotonic()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await wait_event(self._wake, self.refresh_interval)
            await self._settle()
            self._wake.clear()
            self._first_pending = None
            if self._topology is not None:
                await self.publish_now(self._topology)

    async def _settle(self) -> None:
        """Wait until events stop for ``delay``, or ``max_delay`` has passed."""
        while self._first_pending is not None:
            self._wake.clear()
            left = self._first_pending + self.max_delay - time.monotonic()
            if left <= 0:
                return
            if not await wait_event(self._wake, min(self.delay, left)):
                return

    def _build(self, topology: Topology, creds: Mapping[str, NodeCredentials]) -> Build:
        started = time.perf_counter()
        with collector_paused():
            result = build(topology, self.settings, creds, self._last)
        metrics.BUILD_SECONDS.observe(time.perf_counter() - started)
        return result

    async def publish_now(self, topology: Topology) -> tuple[str, ...]:
        nodes = node_ids(topology, self.settings)
        try:
            # Credentials (PKI I/O) and the build (CPU) run off the loop, so DNS answers and
            # ADS streams keep flowing during a large rebuild; the swap below is on the loop.
            creds = await asyncio.to_thread(self.credentials, nodes)
            result = await asyncio.to_thread(self._build, topology, creds)
        except AtlasError as err:
            log.error("snapshot not published, still serving the previous one: %s", err)
            return ()
        if self._last is None:
            changed = self.cache.replace_all(result.snapshots)
        else:
            changed = self.cache.apply(result.snapshots, result.changed, result.removed)
        self._last = result
        # Snapshots and the builders' caches are long-lived: take them out of the cyclic
        # collector's generations so full collections do not pause every stream (they are
        # still freed by reference counting when replaced).
        gc.freeze()
        self.builds += 1
        self.published.set()
        if changed:
            log.info(
                "published snapshots for %d node(s): %s",
                len(changed),
                ", ".join(changed[:10]) + (" …" if len(changed) > 10 else ""),
            )
        return changed

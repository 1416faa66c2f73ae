"""Topology changes → debounced snapshot builds → the cache.

Bursts of watch events collapse into one build: a build starts ``delay`` after the last event,
but never later than ``max_delay`` after the first one still waiting. A build that fails, for
whatever reason, is logged with its traceback and counted, the cache keeps serving the last good
snapshots, and the build is tried again (at once on the next change, else after a backoff): the
loop never ends on a bad build. ``last_error`` and ``ready`` tell the daemon whether this
replica can publish.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from atlas.config import Settings
from atlas.errors import AtlasError
from atlas.model import Topology
from atlas.supervisor import Busy
from atlas.waiting import wait_event
from xds_server import metrics
from xds_server.builders import Build, NodeCredentials, build, node_ids
from xds_server.cache import SnapshotCache
from xds_server.collector import collector_paused
from xds_server.snapshot import Snapshot

__all__ = ["CredentialSource", "SnapshotPublisher"]

log = logging.getLogger(__name__)

CredentialSource = Callable[[Iterable[str]], Mapping[str, NodeCredentials]]
"""Blocking (PKI I/O): run in a thread. Returns credentials for the given node ids."""


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
        source_version: Callable[[], str] = str,
    ) -> None:
        self.cache = cache
        self.settings = settings
        self.credentials = credentials
        self.delay = delay
        self.max_delay = max_delay
        self.refresh_interval = refresh_interval
        """Rebuild this often even without changes, so renewed leaves reach Envoy over SDS."""
        self._topology: Topology | None = None
        self._source_version = source_version
        self.source_version = ""
        """The source version (``Source.version``) the published snapshots were built from."""
        self._wake = asyncio.Event()
        self._first_pending: float | None = None
        self.builds = 0
        self._last: Build | None = None
        """The last published build: the next one only redoes what changed since."""
        self.published: asyncio.Event = asyncio.Event()
        self.last_build_at: float | None = None
        """Unix time of the last successful build."""
        self.last_error: str | None = None
        """Why the last build failed; None once a build succeeds again."""
        self.retry_after = 1.0
        """Seconds before a failed build is tried again without a new change (doubling)."""
        self.busy = Busy()
        self.members: frozenset[str] | None = None
        """The nodes of the published topology (clusters waiting for credentials included):
        who may hold an ADS stream. None until the first publish."""
        self._digests: dict[str, int] = {}
        self._config_total = 0
        self._built: Topology | None = None
        """The topology the published snapshots were built from."""

    def poke(self) -> None:
        """Rebuild even though the topology is unchanged (credentials or CA changed)."""
        if self._topology is not None:
            if self._first_pending is None:
                self._first_pending = time.monotonic()
            self._wake.set()

    def update(self, topology: Topology) -> None:
        if topology == self._topology:
            if self._first_pending is None and self.builds:
                # Nothing to build (an invalid edit keeps the last good definition): what is
                # published is what the source now holds.
                self.source_version = self._source_version()
            return
        self._topology = topology
        if self._first_pending is None:
            self._first_pending = time.monotonic()
        self._wake.set()

    def credentials_of(self, node: str) -> NodeCredentials | None:
        """The credentials the published snapshot of ``node`` was built with."""
        return self._last.creds.get(node) if self._last is not None else None

    @property
    def waiting(self) -> tuple[str, ...]:
        """Nodes without credentials yet (no snapshot)."""
        return self._last.waiting if self._last is not None else ()

    @property
    def ready(self) -> bool:
        """Published at least once, and the last attempt succeeded."""
        return self.builds > 0 and self.last_error is None

    @property
    def pending(self) -> bool:
        """A change was read and its snapshots are not published yet (debounce, build)."""
        return self._first_pending is not None or self._topology is not self._built

    @property
    def config_version(self) -> str:
        """One version for everything published: replicas that see the same Services and
        Secrets reach the same value (the sum of every node's content digest)."""
        return f"{self._config_total & 0xFFFFFFFFFFFFFFFF:016x}"

    async def run(self) -> None:
        backoff = self.retry_after
        while True:
            timeout = backoff if self.last_error is not None else self.refresh_interval
            await wait_event(self._wake, timeout)
            await self._settle()
            self._wake.clear()
            self._first_pending = None
            if self._topology is not None:
                await self.publish_now(self._topology)
            backoff = min(backoff * 2, 60.0) if self.last_error is not None else self.retry_after

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
        # Held clusters (invalid, no good definition known) get no snapshot, but stay members
        # with their credentials: asked for with the others, so they are not retired.
        nodes = (*node_ids(topology, self.settings), *topology.held)
        source_version = self._source_version()
        try:
            with self.busy.working():
                # Credentials (PKI I/O) and the build (CPU) run off the loop, so DNS answers and
                # ADS streams keep flowing during a large rebuild; the swap is on the loop.
                creds = await asyncio.to_thread(self.credentials, nodes)
                result = await asyncio.to_thread(self._build, topology, creds)
        except AtlasError as err:
            return self._failed(str(err), err, traceback=False)
        except Exception as err:  # a bug: never the end of publishing
            return self._failed(f"{type(err).__name__}: {err}", err, traceback=True)
        # Membership first: a removed cluster's stream, woken by its snapshot going away,
        # must find it is no longer a member.
        members = frozenset(nodes)
        if members != self.members:  # the same object while unchanged: admission keys on it
            self.members = members
        # The build was frozen as it ended (``collector_paused``); what the loop allocated
        # meanwhile (streams that came and went) is too, before the swap, whose wake-ups
        # allocate: every full collection during a storm otherwise walks it, with every
        # stream waiting. Frozen objects are still freed by reference counting.
        gc.freeze()
        if self._last is None:
            changed = self.cache.replace_all(result.snapshots)
        else:
            changed = self.cache.apply(result.snapshots, result.changed, result.removed)
        self._last = result
        self._built = topology
        self.builds += 1
        self.source_version = source_version
        self._account(result, changed)
        self.published.set()
        if changed:
            log.info(
                "published snapshots for %d node(s): %s",
                len(changed),
                ", ".join(changed[:10]) + (" …" if len(changed) > 10 else ""),
            )
        return changed

    def _failed(self, reason: str, err: Exception, *, traceback: bool) -> tuple[str, ...]:
        metrics.BUILD_ERRORS.inc()
        self.last_error = reason
        log.error(
            "snapshot not published, still serving the previous one: %s",
            reason,
            exc_info=err if traceback else None,
        )
        return ()

    def _account(self, result: Build, changed: Iterable[str]) -> None:
        """Staleness, visible: generation, last build time, nodes waiting, config version."""
        self.last_error = None
        self.last_build_at = time.time()
        metrics.BUILD_GENERATION.set(self.builds)
        metrics.LAST_BUILD.set(self.last_build_at)
        metrics.WAITING.set(len(result.waiting))
        for node in (*changed, *result.removed):
            self._config_total -= self._digests.pop(node, 0)
            snapshot = result.snapshots.get(node)
            if snapshot is not None:
                digest = _digest(snapshot)
                self._digests[node] = digest
                self._config_total += digest
        if result.waiting:
            log.info(
                "waiting for the credentials of %d node(s): %s",
                len(result.waiting),
                ", ".join(result.waiting[:10]) + (" …" if len(result.waiting) > 10 else ""),
            )


def _digest(snapshot: Snapshot) -> int:
    """A node's share of the config version: its name and every type's version."""
    text = snapshot.node + "".join(f"|{t}={v}" for t, v in sorted(snapshot.versions.items()))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

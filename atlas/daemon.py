"""``atlas serve``: wires a source to its consumers on one asyncio loop.

Data flows one way: the source publishes ``SourceState`` values, and each consumer (the log
here; the xDS and DNS servers when enabled) reacts to the newest one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from atlas.config import Settings
from atlas.pki import CONTROL_PLANE_URI
from atlas.pki_store import CertificateManager, DirectoryStore
from watchers.files import DirectorySource
from watchers.source import SourceState

__all__ = ["ServeOptions", "TopologyLog", "run", "serve"]

log = logging.getLogger("atlas")


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    source: str
    state_dir: str
    settings: Settings = field(default_factory=Settings)
    observability_addresses: tuple[str, ...] = ()


class TopologyLog:
    """Logs each new topology and each newly rejected object, once."""

    def __init__(self) -> None:
        self._reported: set[str] = set()
        self._last_topology: object = None

    def __call__(self, state: SourceState) -> None:
        current = set(state.messages)
        for message in sorted(current - self._reported):
            log.error("rejected: %s", message)
        for message in sorted(self._reported - current):
            log.info("resolved: %s", message)
        self._reported = current
        if state.topology != self._last_topology:
            self._last_topology = state.topology
            clusters = (
                ", ".join(f"{c.name}x{c.replicas}" for c in state.topology.clusters) or "none"
            )
            log.info(
                "topology: %d cluster(s) [%s], %d alertmanager(s)%s",
                len(state.topology.clusters),
                clusters,
                len(state.topology.alertmanagers),
                "" if state.synced else " (not yet synced)",
            )


async def serve(options: ServeOptions, *, ready: Callable[[], None] | None = None) -> None:
    settings = options.settings
    pki = CertificateManager(DirectoryStore(options.state_dir), settings.pki)
    await asyncio.to_thread(pki.ca)
    await asyncio.to_thread(pki.credential, "control-plane", CONTROL_PLANE_URI, client=False)
    source = DirectorySource(
        options.source,
        namespace=settings.namespace,
        alertmanager_selector=settings.alertmanager_selector,
        observability_addresses=options.observability_addresses,
        reserved=(settings.observability_node,),
        poll_interval=settings.poll_interval,
    )
    consumers: list[Callable[[SourceState], None]] = [TopologyLog()]

    def publish(state: SourceState) -> None:
        for consume in consumers:
            consume(state)

    log.info("serving from %s, state in %s", options.source, options.state_dir)
    if ready is not None:
        ready()
    await source.run(publish)


def run(options: ServeOptions) -> int:
    """Run until SIGINT/SIGTERM; exit code 0 on a requested stop."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve(options)
        log.info("stopped")

    asyncio.run(main())
    return 0

"""A fleet reconnecting at once: every stream is taken, and nothing is sent again.

gRPC's server cancels calls beyond 1,000 that the application has not picked up yet; a
Python event loop picks them up one at a time, so a storm of reconnecting Envoys lost most
streams to CANCELLED and 10,000 never settled. ``ServerOptions.max_pending_calls`` raises
that bound, and ``max_pending_seconds`` the time a call may wait (gRPC cancels it after 30 s).
The clients are ``ads-swarm`` (tests/go): one connection per node, Envoy's subscription
order, ACKs, backoff, and what it tells the server when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.gotools import go_tool
from tests.xds_server.fixtures import snapshots
from xds_server.cache import SnapshotCache
from xds_server.server import AdsServicer, ServerOptions, start_server
from xds_server.status import StatusBoard

pytestmark = pytest.mark.e2e

STREAMS = 2500


class Swarm:
    """``ads-swarm`` with ``streams`` nodes ``n0``, ``n1``, … against ``port``."""

    def __init__(self, port: int, streams: int, delta: bool = False) -> None:
        nodes = ",".join(f"n{i}" for i in range(streams))
        self.proc = subprocess.Popen(
            [
                go_tool("ads-swarm"),
                f"-server=127.0.0.1:{port}",
                f"-nodes={nodes}",
                f"-delta={'true' if delta else 'false'}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def command(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    async def report(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        self.command("report")
        return dict(json.loads(await asyncio.to_thread(self.proc.stdout.readline)))

    async def until(self, done: Callable[[dict[str, Any]], bool], within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            await asyncio.sleep(0.5)
            counts = await self.report()
            if done(counts) or time.monotonic() > deadline:
                return counts

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@contextlib.asynccontextmanager
async def fleet(
    streams: int,
    options: ServerOptions | None = None,
    cache: SnapshotCache | None = None,
    delta: bool = False,
) -> AsyncIterator[Swarm]:
    """An ADS server (``options``, snapshots from ``cache``) and ``streams`` swarm clients
    connecting to it at once; both are stopped on the way out, also when a test fails."""
    servicer = AdsServicer(
        cache or SnapshotCache(), StatusBoard(), observability_node="atlas", check_identity=False
    )
    server, port = await start_server(servicer, "127.0.0.1:0", options=options)
    swarm = Swarm(port, streams, delta=delta)
    try:
        yield swarm
    finally:
        swarm.kill()
        await servicer.shutdown(2)
        await server.stop(None)


async def _storm(options: ServerOptions) -> dict[str, Any]:
    """Opens STREAMS streams at once (no snapshots: each waits, open); returns the swarm's
    counts once all are open, or after 40 s."""
    async with fleet(STREAMS, options) as swarm:
        return await swarm.until(lambda c: c["live"] == STREAMS, within=40)


async def test_a_reconnect_storm_loses_no_stream() -> None:
    counts = await _storm(ServerOptions())
    assert counts["live"] == STREAMS
    assert counts["failures"] == 0, counts
    assert counts["attempts"] == STREAMS, "no client had to retry"


async def test_a_bound_on_pending_calls_is_what_cut_the_storm() -> None:
    """The same storm with the bound below the storm (gRPC's default is 1,000; 200 here, so
    that a faster machine cannot pick calls up quickly enough to stay under it): streams
    are cancelled by gRPC itself."""
    counts = await _storm(ServerOptions(max_pending_calls=200))
    assert counts["failures"] > 0
    assert counts["reasons"].get("Canceled", 0) > 0, counts


async def _stalled(options: ServerOptions, streams: int = 50, stall: float = 3.0) -> dict[str, Any]:
    """Opens ``streams`` streams while the server's loop is busy for ``stall`` seconds (as
    when it works through a storm); returns the swarm's counts once all are open."""
    async with fleet(streams, options) as swarm:
        time.sleep(stall)  # the loop picks nothing up; gRPC's own threads take the calls
        return await swarm.until(lambda c: c["live"] == streams, within=30)


async def test_streams_that_wait_to_be_picked_up_are_not_cancelled() -> None:
    """The same stall with Atlas's bound: every stream opens on its first attempt."""
    counts = await _stalled(ServerOptions())
    assert counts["live"] == 50 and counts["failures"] == 0, counts
    assert counts["attempts"] == 50


async def test_a_bound_on_waiting_time_cancels_streams() -> None:
    """gRPC cancels a call not picked up within ``max_pending_seconds`` (its default is 30 s,
    less than a large storm takes): 1 s here, against a loop busy for 3 s."""
    counts = await _stalled(ServerOptions(max_pending_seconds=1))
    assert counts["reasons"].get("Canceled", 0) > 0, counts


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_envoys_that_reconnect_with_current_versions_get_nothing_again(
    delta: bool,
) -> None:
    """Every node synced, then every connection drops at once: they reconnect telling what
    they hold (SotW version_info, delta initial_resource_versions), and receive nothing."""
    streams = 1000
    east = snapshots()["east"]
    cache = SnapshotCache()
    for i in range(streams):
        cache.set_snapshot(f"n{i}", east)
    async with fleet(streams, cache=cache, delta=delta) as swarm:
        synced = await swarm.until(lambda c: c["responses"] == 4 * streams, within=40)
        swarm.command("drop")
        again = await swarm.until(
            lambda c: c["streams"] == 2 * streams and c["live"] == streams, within=40
        )
        await asyncio.sleep(1)  # a late push would show below
        after = await swarm.report()
    assert synced["responses"] == 4 * streams, synced  # CDS, SDS, LDS, RDS each
    assert again["streams"] == 2 * streams and again["failures"] == 0, again
    assert after["responses"] == synced["responses"], "nothing was sent again"
    assert after["resources"] == synced["resources"]

"""Debounce: a burst of topology events becomes one build; unchanged nodes are not touched."""

from __future__ import annotations

import asyncio

from atlas.config import Settings
from atlas.model import DownstreamCluster, Topology
from tests.xds_server.fixtures import creds
from xds_server.cache import SnapshotCache
from xds_server.publisher import SnapshotPublisher


def credentials(nodes: object) -> dict[str, object]:
    return {n: creds(n) for n in nodes}  # type: ignore[attr-defined]


async def test_burst_is_debounced_into_one_build() -> None:
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache, Settings(), credentials, delay=0.05, max_delay=0.5)  # type: ignore[arg-type]
    task = asyncio.create_task(publisher.run())
    try:
        for n in range(1, 11):
            publisher.update(
                Topology(tuple(DownstreamCluster(f"c{i}", "192.0.2.1") for i in range(n)))
            )
            await asyncio.sleep(0.005)
        await asyncio.wait_for(publisher.published.wait(), 2)
        await asyncio.sleep(0.2)
        assert publisher.builds == 1
        assert cache.nodes() == ("atlas", *(f"c{i}" for i in range(10)))
    finally:
        task.cancel()


async def test_max_delay_bounds_a_never_ending_burst() -> None:
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache, Settings(), credentials, delay=0.05, max_delay=0.2)  # type: ignore[arg-type]
    task = asyncio.create_task(publisher.run())
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while not publisher.published.is_set() and loop.time() - start < 2:
            n += 1
            publisher.update(Topology((DownstreamCluster(f"c{n}", "192.0.2.1"),)))
            await asyncio.sleep(0.02)
        assert publisher.published.is_set()
        assert loop.time() - start < 0.6, "published within max_delay despite constant events"
    finally:
        task.cancel()


async def test_only_changed_nodes_are_notified() -> None:
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache, Settings(), credentials)  # type: ignore[arg-type]
    east, west = DownstreamCluster("east", "192.0.2.1"), DownstreamCluster("west", "192.0.2.2")
    await publisher.publish_now(Topology((east, west)))
    notified: list[str] = []
    for node in ("atlas", "east", "west"):
        cache.subscribe(node, lambda node=node: notified.append(node))  # type: ignore[misc]
    changed = await publisher.publish_now(
        Topology((east, DownstreamCluster("west", "192.0.2.2", replicas=2)))
    )
    assert changed == ("atlas", "west") and sorted(notified) == ["atlas", "west"]

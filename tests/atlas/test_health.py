"""The per-node gauges alerts are written against: which nodes they cover, and when."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from atlas.daemon import Atlas
from atlas.health import NodeMetrics
from tests.atlas.test_daemon import manifest, options


def gauges(atlas: Atlas) -> dict[str, dict[tuple[str, ...], float]]:
    return {
        family.name: {tuple(s.labels.values()): s.value for s in family.samples}
        for family in NodeMetrics(atlas).collect()
    }


async def test_gauges_cover_served_and_connected_nodes_but_not_removed_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / "east.yaml").write_text(manifest("east"))
    atlas = Atlas(options(tmp_path))
    await atlas.start()
    try:
        deadline = time.monotonic() + 5
        while atlas.cache.snapshot("east") is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        atlas.board.node("removed")  # an Envoy of a cluster deleted since: disconnected
        atlas.board.node("stray").streams = 1  # connected, but Atlas serves it nothing
        found = gauges(atlas)
        assert found["atlas_xds_node_connected"] == {
            ("atlas",): 0.0,
            ("east",): 0.0,
            ("stray",): 1.0,
        }
        assert found["atlas_xds_node_in_sync"] == {("atlas",): 0.0, ("east",): 0.0}
        expiry = found["atlas_certificate_expiry_timestamp_seconds"]
        assert {labels for labels in expiry} == {("atlas", "leaf"), ("east", "leaf"), ("", "ca")}
        assert all(value > time.time() + 86400 for value in expiry.values())
        assert found["atlas_synced"] == {(): 1.0}
        assert found["atlas_ready"] == {(): 1.0}
    finally:
        await atlas.stop()

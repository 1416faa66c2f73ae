"""The per-node gauges alerts are written against: which nodes they cover, and when."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atlas.serve.daemon import Atlas
from atlas.serve.health import NodeMetrics, readiness
from tests.atlas.serve.daemons import manifest, started
from tests.polling import until


def gauges(atlas: Atlas) -> dict[str, dict[tuple[str, ...], float]]:
    return {
        family.name: {tuple(s.labels.values()): s.value for s in family.samples}
        for family in NodeMetrics(atlas).collect()
    }


async def test_gauges_cover_served_and_connected_nodes_but_not_removed_ones(
    tmp_path: Path,
) -> None:
    atlas = await started(tmp_path)
    try:
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


async def _srv_rcode(atlas: Atlas) -> int:
    import dns.asyncquery
    import dns.message

    query = dns.message.make_query("_grpc._tcp.sidecars.thanos.atlas.", "SRV")
    answer = await dns.asyncquery.udp(query, "127.0.0.1", port=atlas.dns_ports[0], timeout=2)
    return int(answer.rcode())


async def test_a_zone_that_cannot_be_built_makes_the_replica_unready_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dns.ttl: -5 once crashed the source task while /readyz said 200 and DNS answered
    SERVFAIL to everything. A zone that cannot be built now keeps the last one in service
    and the replica says so, in /readyz and /status."""
    import dns_server.server

    atlas = await started(tmp_path)
    try:
        assert readiness(atlas) == []

        def broken(*args: object, **kwargs: object) -> object:
            raise ValueError("injected zone failure")

        monkeypatch.setattr(dns_server.server, "build_zone", broken)
        (tmp_path / "clusters" / "west.yaml").write_text(manifest("west"))
        await until(lambda: atlas.dns.last_error, within=5, what="the zone failure recorded")
        reason = (
            "DNS zone not built (answering from the previous one): ValueError: injected zone "
            "failure"
        )
        assert reason in readiness(atlas)
        assert atlas.status()["ready"] is False and reason in atlas.status()["problems"]
        assert await _srv_rcode(atlas) == 0, "the previous zone is still answered"
        assert not atlas.supervisor.problems(), "no task died for it"
    finally:
        await atlas.stop()


async def test_answers_that_fail_are_servfail_and_the_replica_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """observability_ports.thanos: 99999 once made every SRV query time out (the answer raised
    in the socket handler): an answer that fails is SERVFAIL, counted, and named in health."""
    from dns_server.answers import PreparedZone

    atlas = await started(tmp_path)
    try:

        def broken(*args: object, **kwargs: object) -> object:
            raise ValueError("Attribute 'port' must be between 0-65535")

        monkeypatch.setattr(PreparedZone, "sections", broken)
        atlas.dns.resolver._replay.clear()
        assert await _srv_rcode(atlas) == 2  # SERVFAIL, not a timeout
        assert (
            "DNS answers failing (SERVFAIL sent): ValueError: Attribute 'port' must be between "
            "0-65535" in readiness(atlas)
        )
    finally:
        await atlas.stop()


async def test_a_stopped_listener_is_not_ready_at_once(tmp_path: Path) -> None:
    atlas = await started(tmp_path)
    try:
        assert atlas._http is not None
        atlas._http.close()
        assert "HTTP listener stopped" in readiness(atlas)
        await atlas.dns.stop()
        assert "DNS listener stopped" in readiness(atlas)
    finally:
        await atlas.stop()


async def test_srv_targets_without_an_address_are_named(tmp_path: Path) -> None:
    """A DNS-name observability address and no --envoy-service-ip: every target was NXDOMAIN
    and nothing said so (the CLI now refuses to start; the daemon still tells)."""
    from atlas.config import NetworkSettings, Settings

    network = NetworkSettings(observability_address="obs.example.net")
    atlas = await started(tmp_path, dns_addresses=(), settings=Settings(network=network))
    try:
        problems = readiness(atlas)
        assert any(p.startswith("DNS: the SRV targets have no A/AAAA record") for p in problems)
    finally:
        await atlas.stop()

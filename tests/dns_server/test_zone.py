"""The zone as data: every record kind the brief lists, built from a Topology."""

from __future__ import annotations

from atlas.config import DNSSettings
from atlas.model import DownstreamCluster, Topology
from dns_server.zone import AAAA, NS, SOA, SRV, A, build_zone

EAST = DownstreamCluster("east", "192.0.2.1", replicas=2, group="prod")
WEST = DownstreamCluster("west", "192.0.2.2", group="prod")
SOLO = DownstreamCluster("solo", "192.0.2.3")


def zone(*clusters: DownstreamCluster, serial: int = 7):  # type: ignore[no-untyped-def]
    return build_zone(
        Topology(clusters),
        addresses=["10.0.0.5", "fd00::5"],
        serial=serial,
        settings=DNSSettings(ttl=45, negative_ttl=3),
    )


def srv_targets(z, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(r.data[3]) for r in z.records[name][SRV]]


def test_srv_sets_for_all_one_cluster_and_group() -> None:
    z = zone(EAST, WEST, SOLO)
    assert srv_targets(z, "_grpc._tcp.sidecars.thanos.atlas.") == [
        "east-0.sidecars.thanos.atlas.",
        "east-1.sidecars.thanos.atlas.",
        "solo-0.sidecars.thanos.atlas.",
        "west-0.sidecars.thanos.atlas.",
    ]
    assert srv_targets(z, "_grpc._tcp.east.sidecars.thanos.atlas.") == [
        "east-0.sidecars.thanos.atlas.",
        "east-1.sidecars.thanos.atlas.",
    ]
    assert srv_targets(z, "_grpc._tcp.prod.groups.thanos.atlas.") == [
        "east-0.sidecars.thanos.atlas.",
        "east-1.sidecars.thanos.atlas.",
        "west-0.sidecars.thanos.atlas.",
    ]
    srv = z.records["_grpc._tcp.sidecars.thanos.atlas."][SRV][0]
    assert srv.data[:3] == (10, 100, 10901) and srv.ttl == 45


def test_targets_resolve_to_the_observability_envoy() -> None:
    z = zone(EAST)
    target = z.records["east-1.sidecars.thanos.atlas."]
    assert [r.data for r in target[A]] == [("10.0.0.5",)]
    assert [r.data for r in target[AAAA]] == [("fd00::5",)]


def test_apex_and_existing_empty_names() -> None:
    z = zone(EAST)
    soa = z.records["atlas."][SOA][0]
    assert soa.data == ("ns.atlas.", "hostmaster.atlas.", 7, 3600, 600, 86400, 3)
    assert z.records["atlas."][NS][0].data == ("ns.atlas.",)
    for name in (
        "thanos.atlas.",
        "sidecars.thanos.atlas.",
        "_tcp.sidecars.thanos.atlas.",
        "east.sidecars.thanos.atlas.",
        "groups.thanos.atlas.",
        "prod.groups.thanos.atlas.",
    ):
        assert name in z.names and name not in z.records
    assert "north-0.sidecars.thanos.atlas." not in z.names


def test_no_clusters_still_has_the_well_known_names() -> None:
    z = zone()
    assert "_grpc._tcp.sidecars.thanos.atlas." in z.names
    assert "_grpc._tcp.sidecars.thanos.atlas." not in z.records


def test_same_topology_same_zone_but_serial() -> None:
    assert zone(EAST, WEST).records == zone(WEST, EAST).records
    assert zone(EAST).record_count == 2 + 3 * 2 + 2 * 2

"""Snapshots refuse to exist when a reference is missing, naming the resource."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2

from atlas.errors import SnapshotInconsistent
from xds_server.builders.common import cluster, http_listener
from xds_server.builders.routes import Host, by_host
from xds_server.resources import make_resource, refs
from xds_server.snapshot import Snapshot
from xds_server.types import CLUSTER, ROUTE


def test_route_to_missing_cluster_is_refused() -> None:
    route = by_host("thanos", [Host("east-0", ("east-0.x",), "east_thanos")])
    with pytest.raises(SnapshotInconsistent) as info:
        Snapshot.build("atlas", [route])
    assert str(info.value) == "node atlas: route thanos references missing cluster east_thanos"


def test_listener_to_missing_route_and_secret_is_refused() -> None:
    with pytest.raises(
        SnapshotInconsistent, match="listener thanos references missing route thanos"
    ):
        Snapshot.build(
            "east", [http_listener("thanos", "0.0.0.0", 1, route="thanos", access_log="off")]
        )


def test_tls_context_to_missing_secret_is_refused() -> None:
    from xds_server.builders.common import PeerMatch

    c = cluster(
        "east_thanos", "192.0.2.1", 11901, http2=True, peer=PeerMatch("spiffe://atlas/cluster/east")
    )
    with pytest.raises(
        SnapshotInconsistent, match="cluster east_thanos references missing secret identity"
    ):
        Snapshot.build("atlas", [c])


def test_duplicate_names_are_refused() -> None:
    a = make_resource(CLUSTER, "x", cluster_pb2.Cluster(name="x"))
    with pytest.raises(SnapshotInconsistent, match="duplicate"):
        Snapshot.build("atlas", [a, a])


def test_consistent_snapshot_has_versions_per_type() -> None:
    c = make_resource(CLUSTER, "x", cluster_pb2.Cluster(name="x"))
    r = make_resource(ROUTE, "r", route_pb2.RouteConfiguration(name="r"), refs((CLUSTER, ["x"])))
    s = Snapshot.build("n", [c, r])
    assert set(s.versions) >= {CLUSTER, ROUTE} and s.versions[CLUSTER] != s.versions[ROUTE]
    assert s == Snapshot.build("n", [r, c]), "order does not matter"


def _east_routes(*clusters: str) -> Snapshot:
    upstreams = [cluster(c, "192.0.2.1", 10901, http2=True) for c in clusters]
    route = by_host("thanos", [Host("east-0", ("east-0.x",), "east_thanos")])
    return Snapshot.build("atlas", [*upstreams, route])


def test_a_patched_snapshot_is_checked_again_where_names_went_away() -> None:
    """``since`` skips only pairs whose references and target names are both unchanged: a
    patch that drops a referenced upstream is still refused."""
    good = _east_routes("east_thanos", "west_thanos")
    kept = good.sets[CLUSTER].patch(["west_thanos"], [])
    assert Snapshot.assemble("atlas", {**good.sets, CLUSTER: kept}, since=good).of(
        CLUSTER
    ).keys() == {"east_thanos"}
    broken = good.sets[CLUSTER].patch(["east_thanos"], [])
    with pytest.raises(SnapshotInconsistent, match="route thanos references missing cluster"):
        Snapshot.assemble("atlas", {**good.sets, CLUSTER: broken}, since=good)


def test_a_patch_that_keeps_every_name_skips_the_check_it_already_passed() -> None:
    good = _east_routes("east_thanos")
    changed = cluster("east_thanos", "192.0.2.9", 10901, http2=True)
    patched = good.sets[CLUSTER].patch(["east_thanos"], [changed])
    assert patched.names_id == good.sets[CLUSTER].names_id
    assert patched.version != good.sets[CLUSTER].version
    snapshot = Snapshot.assemble("atlas", {**good.sets, CLUSTER: patched}, since=good)
    assert snapshot.of(CLUSTER)["east_thanos"] is changed

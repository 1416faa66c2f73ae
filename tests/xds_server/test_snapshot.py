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

"""The thanos route table's refusals: a message naming what was asked and what exists."""

from __future__ import annotations

from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2

from atlas.model import DownstreamCluster, Topology
from tests.xds_server.fixtures import TOPOLOGY, snapshots
from xds_server.builders.refusals import COUNTER_FILTER, KNOWN_LISTED, refusal_entry
from xds_server.types import ROUTE


def refused_vhost(entry: bytes) -> route_pb2.RouteConfiguration:
    table = route_pb2.RouteConfiguration()
    table.ParseFromString(entry)
    (vhost,) = table.virtual_hosts
    return vhost


def body(route: object) -> str:
    return str(route.direct_response.body_format.text_format_source.inline_string)  # type: ignore[attr-defined]


def test_each_reason_is_counted_under_its_own_stat_prefix() -> None:
    vhost = refused_vhost(refusal_entry(("east-0",), 1, 1))
    prefixes = []
    for route in vhost.routes:
        counter = local_rate_limit_pb2.LocalRateLimit()
        route.typed_per_filter_config[COUNTER_FILTER].Unpack(counter)
        assert counter.filter_enabled.default_value.numerator == 100
        assert not counter.HasField("filter_enforced"), "counted, never refused by the limiter"
        prefixes.append(counter.stat_prefix)
    assert prefixes == ["atlas_refused_unknown_target", "atlas_refused_not_a_target"]


def test_a_long_fleet_is_summarised_not_listed() -> None:
    clusters = tuple(
        DownstreamCluster(name=f"c{i:02d}", envoy_address=f"192.0.2.{i + 1}", replicas=2)
        for i in range(KNOWN_LISTED)
    )
    table = route_pb2.RouteConfiguration()
    table.ParseFromString(snapshots(Topology(clusters, ()))["atlas"].of(ROUTE)["thanos"].body)
    text = body(table.virtual_hosts[-1].routes[0])
    assert text == (
        "atlas: no cluster/replica '%REQ(:AUTHORITY)%' (16 replicas of 8 clusters; "
        "dig SRV _grpc._tcp.sidecars.thanos.atlas. lists them)"
    )


def test_no_cluster_at_all_says_so() -> None:
    assert "(no cluster is defined)" in body(refused_vhost(refusal_entry((), 0, 0)).routes[0])


def test_the_list_follows_the_topology() -> None:
    smaller = Topology(TOPOLOGY.clusters[:1], TOPOLOGY.alertmanagers)
    table = route_pb2.RouteConfiguration()
    table.ParseFromString(snapshots(smaller)["atlas"].of(ROUTE)["thanos"].body)
    assert body(table.virtual_hosts[-1].routes[0]).endswith("(known: east-0, east-1)")


def test_an_envoy_without_body_format_gets_the_same_reason_unnamed() -> None:
    """Envoy 1.36 ignores ``body_format`` (it does not know it) and sends ``body``."""
    unknown, not_a_target = refused_vhost(refusal_entry(("east-0",), 1, 1)).routes
    assert unknown.direct_response.body.inline_string == (
        "atlas: no cluster/replica by the name dialed (known: east-0)"
    )
    assert body(unknown) == "atlas: no cluster/replica '%REQ(:AUTHORITY)%' (known: east-0)"
    assert not_a_target.direct_response.body.inline_string.startswith(
        "atlas: ':authority' dialed is not a sidecar name: "
    )

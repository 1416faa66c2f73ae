"""An incremental build (given the previous one) is exactly a cold build, and says what changed."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from atlas.config import NetworkSettings, Settings
from atlas.model import Alertmanager, DownstreamCluster, Topology, Upstream
from xds_server.builders import Build, NodeCredentials, build, clear_caches
from xds_server.builders.blocks import ROWS_PER_BLOCK, ends_block

NAMES = ["a", "b", "east", "west", "long-cluster-name-0123456789"]
ADDRESSES = ["192.0.2.1", "192.0.2.200", "2001:db8::7", "envoy.east.example.net"]
SETTINGS = [
    Settings(),
    Settings(network=NetworkSettings(connect_timeout=5.0)),
    Settings(network=NetworkSettings(downstream_listen_address="envoy-address")),
]

cluster = st.builds(
    DownstreamCluster,
    name=st.sampled_from(NAMES),
    envoy_address=st.sampled_from(ADDRESSES),
    replicas=st.integers(1, 3),
    thanos=st.sampled_from([Upstream("sidecar.mon.svc", 10901), Upstream("t.x.svc", 1)]),
)
alertmanager = st.builds(
    Alertmanager,
    name=st.sampled_from(["am-0", "am-1"]),
    replica=st.integers(0, 1),
    address=st.sampled_from(["10.43.0.20", "am.monitoring.svc"]),
    port=st.sampled_from([9093, 9094]),
)
# One change at a time, as a running Atlas sees them: most clusters stay as they were.
change = st.one_of(
    st.tuples(st.just("put"), cluster),  # add a cluster or replace its definition
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(
        st.just("alertmanagers"), st.lists(alertmanager, max_size=2, unique_by=lambda a: a.name)
    ),
    st.tuples(st.just("settings"), st.integers(0, len(SETTINGS) - 1)),
    st.tuples(st.just("renew"), st.sampled_from(["atlas", *NAMES])),  # one node's new leaf
    st.tuples(st.just("rotate"), st.none()),  # a new trust bundle for every node
    st.tuples(st.just("wait"), st.sampled_from(NAMES)),  # a node without credentials yet
    st.tuples(st.just("reparse"), st.none()),  # equal but new cluster objects
    st.tuples(st.just("nothing"), st.none()),
)


def cred(node: str, leaf: int, bundle: int) -> NodeCredentials:
    return NodeCredentials(f"CERT-{node}-{leaf}".encode(), f"KEY-{node}".encode(), b"B%d" % bundle)


def as_table(b: Build) -> dict[str, dict[str, object]]:
    return {
        node: {
            "versions": dict(s.versions),
            "bodies": {t: {n: r.body for n, r in s.of(t).items()} for t in s.sets},
        }
        for node, s in b.snapshots.items()
    }


@settings(max_examples=80, deadline=None)
@given(changes=st.lists(change, min_size=1, max_size=12))
def test_incremental_builds_equal_cold_builds(changes: list[tuple[str, object]]) -> None:
    clusters: dict[str, DownstreamCluster] = {}
    ams: list[Alertmanager] = []
    config = SETTINGS[0]
    leaves: dict[str, int] = {}
    bundle = 0
    waiting: set[str] = set()
    previous: Build | None = None
    for kind, arg in changes:
        if kind == "put":
            assert isinstance(arg, DownstreamCluster)
            clusters[arg.name] = arg
            waiting.discard(arg.name)
        elif kind == "delete":
            clusters.pop(str(arg), None)
        elif kind == "alertmanagers":
            ams = list(arg)  # type: ignore[call-overload]
        elif kind == "settings":
            config = SETTINGS[int(arg)]  # type: ignore[call-overload]
        elif kind == "renew":
            leaves[str(arg)] = leaves.get(str(arg), 0) + 1
        elif kind == "rotate":
            bundle += 1
        elif kind == "wait":
            waiting.add(str(arg))
        elif kind == "reparse":
            clusters = {n: replace(c) for n, c in clusters.items()}
        topology = Topology(tuple(clusters.values()), tuple(ams))
        creds = {
            n: cred(n, leaves.get(n, 0), bundle)
            for n in ("atlas", *topology.cluster_names)
            if n not in waiting
        }
        incremental = build(topology, config, creds, previous)
        clear_caches()
        # A node without credentials keeps its last ones: a cold build given those is equal.
        cold = build(topology, config, incremental.creds)
        assert as_table(incremental) == as_table(cold), f"after {kind} {arg}"
        had = set(previous.creds) if previous is not None else set()
        assert set(incremental.waiting) == {
            n for n in ("atlas", *topology.cluster_names) if n not in creds and n not in had
        }
        for n, c in incremental.creds.items():
            assert c == creds.get(n) or (n not in creds and c is previous.creds[n])  # type: ignore[union-attr]

        before = previous.snapshots if previous is not None else {}
        assert set(incremental.changed) == {
            n
            for n, s in incremental.snapshots.items()
            if n not in before or dict(before[n].versions) != dict(s.versions)
        }
        assert set(incremental.removed) == set(before) - set(incremental.snapshots)
        previous = incremental


def test_missing_credentials_keep_the_last_ones_and_block_no_other_node() -> None:
    """The follower's gap during a CA rotation: the CA is new, some leaves are not yet."""
    east = DownstreamCluster("east", "192.0.2.1")
    west = DownstreamCluster("west", "192.0.2.2")
    old = {n: cred(n, 0, 0) for n in ("atlas", "east", "west")}
    first = build(Topology((east, west)), Settings(), old)
    north = DownstreamCluster("north", "192.0.2.3")
    gap = {"west": cred("west", 1, 1)}  # only west's new leaf is written so far
    second = build(Topology((east, west, north)), Settings(), gap, first)
    assert second.snapshots["atlas"].of(
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ).keys() >= {"north_thanos"}, (
        "the observability node follows the topology on its last credentials"
    )
    assert second.creds["atlas"] is old["atlas"] and second.creds["east"] is old["east"]
    assert second.creds["west"] is gap["west"]
    assert second.waiting == ("north",) and "north" not in second.snapshots
    assert second.removed == ()
    assert set(second.changed) == {"atlas", "west"}
    never = build(Topology((east,)), Settings(), {"east": old["east"]})
    assert never.waiting == ("atlas",) and set(never.snapshots) == {"east"}


def test_an_unchanged_node_keeps_its_snapshot_object() -> None:
    east = DownstreamCluster("east", "192.0.2.1", replicas=2)
    west = DownstreamCluster("west", "192.0.2.2")
    creds = {n: cred(n, 0, 0) for n in ("atlas", "east", "west")}
    first = build(Topology((east, west)), Settings(), creds)
    second = build(Topology((replace(east, replicas=3), west)), Settings(), creds, first)
    assert second.snapshots["west"] is first.snapshots["west"]
    assert second.changed == ("atlas", "east")
    assert second.removed == ()


def test_many_clusters_across_blocks_build_incrementally_as_cold() -> None:
    """1,000 clusters fill several blocks of the route tables (``builders.blocks``): changes
    within one, at a block's end, and a swap that keeps the count (compared pair by pair)."""
    clusters = {f"c{i:04d}": DownstreamCluster(f"c{i:04d}", "192.0.2.1") for i in range(0, 2000, 2)}
    ender = next(n for n in clusters if ends_block(n, ROWS_PER_BLOCK))
    steps = [  # what changes, what goes, and the downstream nodes whose snapshot differs
        ("replicas", {"c0500": replace(clusters["c0500"], replicas=3)}, [], {"c0500"}),
        ("insert", {"c0501": DownstreamCluster("c0501", "192.0.2.9")}, [], {"c0501"}),
        ("remove a block's last", {}, [ender], set()),
        ("swap", {"c1999": DownstreamCluster("c1999", "192.0.2.7")}, ["c0010"], {"c1999"}),
        # only the observability node dials a cluster's Envoy address
        ("address", {"c0012": replace(clusters["c0012"], envoy_address="x.example")}, [], set()),
    ]
    creds = {n: cred(n, 0, 0) for n in ("atlas", *clusters, "c0501", "c1999")}
    previous = build(Topology(tuple(clusters.values())), Settings(), creds)
    for label, put, removed, downstream in steps:
        clusters.update(put)
        for name in removed:
            del clusters[name]
        topology = Topology(tuple(clusters.values()))
        incremental = build(topology, Settings(), creds, previous)
        assert set(incremental.changed) == {"atlas", *downstream}, label
        assert set(incremental.removed) == set(removed), label
        kept = [n for n in clusters if n not in put]
        assert all(incremental.snapshots[n] is previous.snapshots[n] for n in kept), label
        clear_caches()
        assert as_table(incremental) == as_table(build(topology, Settings(), creds)), label
        previous = incremental

"""The ADS protocol state machine, without sockets: ACK, NACK, stale nonces, reconnects,
unsubscribe, and make-before-break ordering."""

from __future__ import annotations

from dataclasses import replace

from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2

from atlas.config import Settings
from atlas.model import DownstreamCluster, Topology
from tests.xds_server.fixtures import AM, EAST, TOPOLOGY, WEST, creds, snapshots
from xds_server import sotw as sotw_wire
from xds_server.builders import NodeCredentials, build
from xds_server.resources import content_version
from xds_server.snapshot import Snapshot
from xds_server.status import StatusBoard
from xds_server.stream import Push, Request, StreamState
from xds_server.types import CLUSTER, LISTENER, ROUTE, SECRET


def sotw(board: StatusBoard | None = None) -> StreamState:
    return StreamState("atlas", board or StatusBoard(), "sotw")


def ack(
    state: StreamState, push: Push, snapshot: Snapshot, names: tuple[str, ...] = ()
) -> list[Push]:
    state.receive(
        Request(push.type_url, nonce=push.nonce, names=names, version_info=push.version), snapshot
    )
    return state.pushes(snapshot)


def subscribe_all(state: StreamState, snapshot: Snapshot) -> dict[str, Push]:
    """Drive a fresh SotW stream the way Envoy does until nothing more is sent."""
    state.receive(Request(CLUSTER, names=()), snapshot)
    state.receive(Request(LISTENER, names=()), snapshot)
    last: dict[str, Push] = {}
    pending = state.pushes(snapshot)
    while pending:
        push = pending.pop(0)
        last[push.type_url] = push
        names: tuple[str, ...] = ()
        if push.type_url == LISTENER:
            state.receive(Request(ROUTE, names=tuple(snapshot.of(ROUTE))), snapshot)
            state.receive(Request(SECRET, names=tuple(snapshot.of(SECRET))), snapshot)
        if push.type_url in (ROUTE, SECRET):
            names = tuple(snapshot.of(push.type_url))
        pending += ack(state, push, snapshot, names)
    return last


def test_clusters_go_before_the_listeners_that_use_them() -> None:
    snap = snapshots()["atlas"]
    state = sotw()
    state.receive(Request(LISTENER, names=()), snap)
    state.receive(Request(CLUSTER, names=()), snap)
    first = state.pushes(snap)
    assert [p.type_url for p in first] == [CLUSTER, LISTENER]
    assert "ads" not in first[1].target, "the ADS listener waits for its cluster's ACK"
    after_ack = ack(state, first[0], snap)
    assert after_ack == [], "one response per type in flight"
    listeners = ack(state, first[1], snap)
    assert [p.type_url for p in listeners] == [LISTENER] and "ads" in listeners[0].target


def test_removals_go_last() -> None:
    state = sotw()
    before = snapshots()["atlas"]
    sent = subscribe_all(state, before)
    assert "west_thanos" in sent[CLUSTER].target
    after = snapshots(Topology((EAST,), TOPOLOGY.alertmanagers))["atlas"]
    (routes,) = state.pushes(after)
    assert routes.type_url == ROUTE, "routes stop using west first; clusters are unchanged yet"
    (clusters,) = ack(state, routes, after, names=tuple(after.of(ROUTE)))
    assert clusters.type_url == CLUSTER and "west_thanos" not in clusters.target
    assert "east_thanos" in clusters.target


def test_a_route_to_a_new_cluster_waits_for_it_and_one_to_the_same_clusters_does_not() -> None:
    """Incremental builds, as the daemon makes them: a table whose upstreams are unchanged
    keeps its references object, and is sent without waiting for anything."""
    node_creds = {n: creds(n) for n in ("atlas", "east", "west", "north")}
    first = build(TOPOLOGY, Settings(), node_creds)
    state = sotw()
    subscribe_all(state, first.snapshots["atlas"])
    west = replace(WEST, replicas=2)  # the thanos table changes, the upstreams do not
    second = build(Topology((EAST, west), (AM,)), Settings(), node_creds, first).snapshots
    (routes,) = state.pushes(second["atlas"])
    assert routes.type_url == ROUTE and "west-1" in str(routes.target["thanos"].body)
    names = tuple(second["atlas"].of(ROUTE))
    assert ack(state, routes, second["atlas"], names) == []

    north = DownstreamCluster("north", "192.0.2.13")
    third = build(Topology((EAST, west, north), (AM,)), Settings(), node_creds, first).snapshots
    clusters, routes = state.pushes(third["atlas"])
    assert clusters.type_url == CLUSTER and "north_thanos" in clusters.target
    assert routes.target["thanos"] is second["atlas"].of(ROUTE)["thanos"], "north's waits"
    assert routes.target["alert-intake"] is third["atlas"].of(ROUTE)["alert-intake"], (
        "the alert intake's table admits north at once: it routes to no north upstream"
    )
    assert ack(state, routes, third["atlas"], names) == []
    (routes,) = ack(state, clusters, third["atlas"])
    assert routes.type_url == ROUTE, "north's routes went out once its upstreams were accepted"
    assert b"north-0" in routes.target["thanos"].body


def _sent(push: Push) -> discovery_pb2.DiscoveryResponse:
    """What Envoy receives for ``push`` on a state-of-the-world stream."""
    return discovery_pb2.DiscoveryResponse.FromString(sotw_wire.encode(push))


def _route_names(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    return [route_pb2.RouteConfiguration.FromString(a.value).name for a in response.resources]


def test_sotw_sends_only_the_route_tables_that_changed_with_the_whole_sets_version() -> None:
    """Routes are a type the protocol lets state of the world send in part (the observability
    Envoy's tables are about 6 MB at 10,000 clusters); Envoy keeps the tables left out."""
    node_creds = {n: creds(n) for n in ("atlas", "east", "west")}
    first = build(TOPOLOGY, Settings(), node_creds)
    state = sotw()
    sent = subscribe_all(state, first.snapshots["atlas"])
    names = tuple(first.snapshots["atlas"].of(ROUTE))
    assert len(names) == 4 and _route_names(_sent(sent[ROUTE])) == sorted(names), "first: all"

    second = build(
        Topology((EAST, replace(WEST, replicas=2)), (AM,)), Settings(), node_creds, first
    )
    snap = second.snapshots["atlas"]
    (routes,) = state.pushes(snap)
    response = _sent(routes)
    assert _route_names(response) == ["thanos"], "only the table west's replica changed"
    assert response.version_info == snap.versions[ROUTE] == routes.version, "the whole set's"
    assert routes.target == snap.of(ROUTE), "what Envoy holds once it ACKs"
    assert ack(state, routes, snap, names) == []

    fewer = tuple(n for n in names if n != "alert-intake")
    state.receive(Request(ROUTE, names=fewer, version_info=routes.version), snap)
    (dropped,) = state.pushes(snap)
    assert _route_names(_sent(dropped)) == [] and dropped.version != routes.version
    assert ack(state, dropped, snap, fewer) == []
    state.receive(Request(ROUTE, names=names, version_info=dropped.version), snap)
    (again,) = state.pushes(snap)
    assert _route_names(_sent(again)) == ["alert-intake"], "asked for again: sent again"
    assert again.version == snap.versions[ROUTE]


def test_sotw_sends_every_route_table_after_a_nack_or_to_a_client_on_another_version() -> None:
    node_creds = {n: creds(n) for n in ("atlas", "east", "west")}
    first = build(TOPOLOGY, Settings(), node_creds)
    second = build(
        Topology((EAST, replace(WEST, replicas=2)), (AM,)), Settings(), node_creds, first
    )
    snap, names = second.snapshots["atlas"], tuple(second.snapshots["atlas"].of(ROUTE))
    state = sotw()
    sent = subscribe_all(state, first.snapshots["atlas"])
    stranger = sotw()  # reconnected: current clusters, routes of a version never made here
    stranger.receive(Request(CLUSTER, names=(), version_info=snap.versions[CLUSTER]), snap)
    stranger.receive(Request(LISTENER, names=(), version_info=snap.versions[LISTENER]), snap)
    stranger.receive(Request(ROUTE, names=names, version_info="from-another-plane"), snap)
    (routes,) = stranger.pushes(snap)
    assert routes.type_url == ROUTE and _route_names(_sent(routes)) == sorted(names)

    (partial,) = state.pushes(snap)
    state.receive(Request(ROUTE, nonce=partial.nonce, names=names, error="bad route"), snap)
    assert state.pushes(snap) == [], "a NACKed version is not sent again"
    third = build(TOPOLOGY, Settings(), node_creds, second).snapshots["atlas"]
    (retry,) = state.pushes(third)
    assert retry.target == third.of(ROUTE)
    assert retry.version == third.versions[ROUTE] == sent[ROUTE].version
    assert _route_names(_sent(retry)) == [], "Envoy still holds the first tables it accepted"


def test_sotw_secrets_stay_whole_when_one_changes() -> None:
    """SDS rejects the empty update Envoy's unified mux gives a secret left out."""
    snap = snapshots()["atlas"]
    state = sotw()
    sent = subscribe_all(state, snap)
    old = creds("atlas")
    renewed = {"atlas": NodeCredentials(old.cert_pem, old.key_pem, old.bundle_pem + old.bundle_pem)}
    changed = snapshots_with(renewed)
    (secrets,) = state.pushes(changed)
    assert secrets.type_url == SECRET and secrets.version != sent[SECRET].version
    assert len(_sent(secrets).resources) == 2, "identity unchanged, and still sent"


def snapshots_with(node_creds: dict[str, NodeCredentials]) -> Snapshot:
    every = {n: creds(n) for n in ("atlas", "east", "west")} | node_creds
    return build(TOPOLOGY, Settings(), every).snapshots["atlas"]


def test_nack_keeps_the_accepted_version_and_is_not_resent() -> None:
    board = StatusBoard()
    state = sotw(board)
    before = snapshots()["atlas"]
    sent = subscribe_all(state, before)
    after = snapshots(Topology((EAST,), TOPOLOGY.alertmanagers))["atlas"]
    (routes,) = state.pushes(after)
    names = tuple(after.of(ROUTE))
    state.receive(Request(ROUTE, nonce=routes.nonce, error="bad route", names=names), after)
    assert state.pushes(after) == [], "not resent, and west's clusters stay while routes use them"
    (status,) = board.snapshot()
    assert status["last_nack"]["type"] == "route" and status["last_nack"]["message"] == "bad route"
    assert status["acked"]["route"] == sent[ROUTE].version != status["sent"]["route"]
    fixed = snapshots(Topology((EAST,), ()))["atlas"]
    (retry,) = state.pushes(fixed)
    assert retry.type_url == ROUTE and retry.version != routes.version, "a new snapshot is sent"


def test_stale_nonce_is_ignored() -> None:
    snap = snapshots()["atlas"]
    state = sotw()
    state.receive(Request(CLUSTER, names=()), snap)
    (push,) = state.pushes(snap)
    state.receive(Request(CLUSTER, nonce="999", names=(), error="old news"), snap)
    assert StatusBoard().snapshot() == []
    assert state.pushes(snap) == [], "still waiting for the real ACK"
    assert ack(state, push, snap) == []


def test_sotw_reconnect_with_current_version_gets_nothing() -> None:
    snap = snapshots()["atlas"]
    sent = subscribe_all(sotw(), snap)
    again = sotw()
    again.receive(Request(CLUSTER, names=(), version_info=sent[CLUSTER].version), snap)
    again.receive(Request(LISTENER, names=(), version_info=sent[LISTENER].version), snap)
    again.receive(
        Request(ROUTE, names=tuple(snap.of(ROUTE)), version_info=sent[ROUTE].version), snap
    )
    assert again.pushes(snap) == []


def test_sotw_reconnect_holding_some_route_tables_is_judged_by_those() -> None:
    """The version Envoy reports covers the names it asks for: all of them (the snapshot's
    own version) or a part (summed from those)."""
    snap = snapshots()["atlas"]
    sent = subscribe_all(sotw(), snap)
    some = tuple(sorted(snap.of(ROUTE)))[:2]
    part = content_version(snap.of(ROUTE)[n] for n in some)

    def reconnect(names: tuple[str, ...], version: str) -> list[Push]:
        again = sotw()
        again.receive(Request(CLUSTER, names=(), version_info=sent[CLUSTER].version), snap)
        again.receive(Request(LISTENER, names=(), version_info=sent[LISTENER].version), snap)
        again.receive(Request(ROUTE, names=names, version_info=version), snap)
        return again.pushes(snap)

    assert reconnect(some, part) == []
    (routes,) = reconnect(some, sent[ROUTE].version)  # the whole set's: not what it holds
    assert sorted(routes.target) == list(some)
    assert reconnect(tuple(snap.of(ROUTE)), sent[ROUTE].version) == []


def test_delta_reconnect_with_initial_resource_versions_gets_only_the_difference() -> None:
    snap = snapshots()["atlas"]
    state = StreamState("atlas", StatusBoard(), "delta")
    clusters = snap.of(CLUSTER)
    known = {n: r.version for n, r in clusters.items() if n != "west_prometheus"}
    known["gone_cluster"] = "abc"
    known["east_thanos"] = "outdated"
    state.receive(Request(CLUSTER, initial_versions=tuple(sorted(known.items()))), snap)
    (push,) = state.pushes(snap)
    assert sorted(r.name for r in push.updated) == ["east_thanos", "west_prometheus"]
    assert push.removed == ("gone_cluster",)
    assert push.version == content_version(clusters.values())


def test_delta_reconnect_with_everything_current_sends_nothing() -> None:
    snap = snapshots()["atlas"]
    state = StreamState("atlas", StatusBoard(), "delta")
    versions = tuple(sorted((n, r.version) for n, r in snap.of(CLUSTER).items()))
    state.receive(Request(CLUSTER, initial_versions=versions), snap)
    assert state.pushes(snap) == []


def test_delta_subscribe_and_unsubscribe_by_name() -> None:
    snap = snapshots()["east"]
    state = StreamState("east", StatusBoard(), "delta")
    state.receive(Request(SECRET, subscribe=("identity",)), snap)
    (push,) = state.pushes(snap)
    assert [r.name for r in push.updated] == ["identity"]
    state.receive(Request(SECRET, nonce=push.nonce), snap)
    state.receive(Request(SECRET, subscribe=("trust-bundle",)), snap)
    (push,) = state.pushes(snap)
    assert [r.name for r in push.updated] == ["trust-bundle"], "only the new name is sent"
    state.receive(Request(SECRET, nonce=push.nonce), snap)
    state.receive(Request(SECRET, unsubscribe=("identity",)), snap)
    assert state.pushes(snap) == [] or all(not p.removed for p in state.pushes(snap))
    changed = snapshots(Topology((EAST.__class__("east", "192.0.2.99", replicas=2), WEST)))["east"]
    for p in state.pushes(changed):
        assert "identity" not in {r.name for r in p.updated}, "unsubscribed names are not sent"


def test_snapshot_change_pushes_only_changed_types() -> None:
    snap = snapshots()["east"]
    state = StreamState("east", StatusBoard(), "sotw")
    subscribe_all(state, snap)
    moved = snapshots(
        Topology(
            (EAST, WEST.__class__("west", "envoy.west.example.net", replicas=1)),
            TOPOLOGY.alertmanagers,
        )
    )["east"]
    assert state.pushes(moved) == [], "west's change does not touch east"


def test_delta_answers_a_name_that_does_not_exist_once_as_removed() -> None:
    snap = snapshots()["east"]
    state = StreamState("east", StatusBoard(), "delta")
    state.receive(Request(SECRET, subscribe=("identity", "no-such-secret")), snap)
    (push,) = state.pushes(snap)
    assert [r.name for r in push.updated] == ["identity"]
    assert push.removed == ("no-such-secret",), "the client need not wait for a timeout"
    state.receive(Request(SECRET, nonce=push.nonce), snap)
    assert state.pushes(snap) == [], "answered once: no loop"
    state.receive(Request(SECRET, subscribe=("also-missing",)), snap)
    (push,) = state.pushes(snap)
    assert push.updated == () and push.removed == ("also-missing",)
    state.receive(Request(SECRET, nonce=push.nonce), snap)
    assert state.pushes(snap) == []


def test_an_unknown_type_is_ignored_without_a_response() -> None:
    snap = snapshots()["east"]
    state = StreamState("east", StatusBoard(), "sotw")
    state.receive(Request("type.googleapis.com/envoy.config.endpoint.v3.Made.Up", names=()), snap)
    assert state.pushes(snap) == []

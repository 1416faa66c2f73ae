"""Large responses share their resource bytes between streams, and stay exactly protobuf's."""

from __future__ import annotations

from functools import partial

from envoy.service.discovery.v3 import discovery_pb2

from xds_server import delta, sotw
from xds_server.bodies import LARGE, Bodies
from xds_server.resources import Resource, content_version, resource_from_bytes
from xds_server.stream import Push
from xds_server.types import CLUSTER


def _resources(n: int, tag: str = "") -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for i in range(n):
        r = resource_from_bytes(CLUSTER, f"up-{i:05d}", f"body-{i}{tag}".encode() * 3)
        out[r.name] = r
    return out


def _push(
    target: dict[str, Resource],
    nonce: str,
    updated: tuple[Resource, ...] = (),
    removed: tuple[str, ...] = (),
) -> Push:
    return Push(CLUSTER, content_version(target.values()), nonce, target, updated, removed)


def test_sotw_streams_share_the_body_and_keep_their_own_nonce() -> None:
    target = _resources(LARGE)
    bodies = Bodies()
    first = sotw.encode(_push(target, "1"), bodies)
    second = sotw.encode(_push(target, "7"), bodies)
    assert (bodies.misses, bodies.hits) == (1, 1)
    assert first == sotw.encode(_push(target, "1"))  # byte for byte what no cache gives
    parsed = discovery_pb2.DiscoveryResponse.FromString(second)
    assert parsed.nonce == "7"
    assert len(parsed.resources) == LARGE
    assert parsed.version_info == content_version(target.values())


def test_a_new_version_is_joined_again() -> None:
    bodies = Bodies()
    old, new = _resources(LARGE), _resources(LARGE, tag="x")
    sotw.encode(_push(old, "1"), bodies)
    response = discovery_pb2.DiscoveryResponse.FromString(sotw.encode(_push(new, "2"), bodies))
    assert bodies.misses == 2
    assert response.resources[0].value.endswith(b"x")


def test_small_responses_are_not_kept() -> None:
    bodies = Bodies()
    sotw.encode(_push(_resources(LARGE - 1), "1"), bodies)
    assert bodies.misses == bodies.hits == 0


def test_delta_shares_only_whole_set_responses() -> None:
    target = _resources(LARGE)
    everything = tuple(r for _, r in sorted(target.items()))
    bodies = Bodies()
    whole = delta.encode(_push(target, "1", everything), bodies)
    assert whole == delta.encode(_push(target, "1", everything))
    delta.encode(_push(target, "2", everything), bodies)
    assert (bodies.misses, bodies.hits) == (1, 1)
    # A change of a few resources, or one that also removes names, is this stream's own.
    delta.encode(_push(target, "3", everything[:5]), bodies)
    partial = delta.encode(_push(target, "4", everything, ("gone",)), bodies)
    assert (bodies.misses, bodies.hits) == (1, 1)
    assert discovery_pb2.DeltaDiscoveryResponse.FromString(partial).removed_resources == ["gone"]


def test_the_cache_holds_a_few_versions_only() -> None:
    bodies = Bodies(entries=2)
    for k in range(3):
        bodies.get(k, partial(bytes, [k]))
    assert bodies.get(0, lambda: b"again") == b"again"  # the oldest was dropped
    assert bodies.get(2, lambda: b"never") == bytes([2])


def test_kept_entries_give_the_same_bytes() -> None:
    target = _resources(LARGE)
    fresh = sotw.encode(_push(target, "1"))
    kept = sotw.encode(_push(target, "1"), Bodies())
    again = sotw.encode(_push(target, "1"), Bodies())  # entries kept on the resources now
    assert fresh == kept == again

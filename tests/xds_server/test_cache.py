"""The cache notifies only the nodes whose snapshot changed."""

from __future__ import annotations

from xds_server.cache import SnapshotCache
from xds_server.resources import resource_from_bytes
from xds_server.snapshot import Snapshot
from xds_server.types import SECRET


def snap(node: str, body: bytes) -> Snapshot:
    return Snapshot.build(node, [resource_from_bytes(SECRET, "identity", body)])


def test_apply_sets_changed_and_clears_removed_nodes_only() -> None:
    cache = SnapshotCache()
    cache.replace_all({"a": snap("a", b"1"), "b": snap("b", b"1"), "c": snap("c", b"1")})
    told: list[str] = []
    for node in "abc":
        cache.subscribe(node, lambda node=node: told.append(node))  # type: ignore[misc]
    new = {"a": snap("a", b"2"), "b": cache.snapshot("b")}
    done = cache.apply(new, changed=["a"], removed=["c"])  # type: ignore[arg-type]
    assert done == ("a", "c")
    assert sorted(told) == ["a", "c"]
    assert cache.nodes() == ("a", "b")
    assert cache.snapshot("a") == new["a"]


def test_apply_ignores_a_change_that_is_not_one() -> None:
    cache = SnapshotCache()
    cache.replace_all({"a": snap("a", b"1")})
    assert cache.apply({"a": snap("a", b"1")}, changed=["a"], removed=[]) == ()

"""Resource sets: versions by content in any order, and patches equal to building anew."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xds_server.resource_set import DuplicateName, ResourceSet
from xds_server.resources import Resource, content_version, refs, resource_from_bytes
from xds_server.types import CLUSTER, ROUTE, SECRET


def route(name: str, body: bytes, clusters: frozenset[str] = frozenset()) -> Resource:
    return resource_from_bytes(ROUTE, name, body, refs((CLUSTER, clusters)))


members = st.dictionaries(
    st.sampled_from([f"r{i}" for i in range(12)]),
    st.tuples(st.binary(max_size=8), st.frozensets(st.sampled_from(["a", "b", "c"]))),
    max_size=12,
)


@given(before=members, after=members)
def test_patch_equals_building_the_new_set(
    before: dict[str, tuple[bytes, frozenset[str]]], after: dict[str, tuple[bytes, frozenset[str]]]
) -> None:
    old = ResourceSet.of(ROUTE, [route(n, b, c) for n, (b, c) in before.items()])
    new = ResourceSet.of(ROUTE, [route(n, b, c) for n, (b, c) in after.items()])
    gone = [n for n in before if n not in after]
    patched = old.patch(gone, [route(n, b, c) for n, (b, c) in after.items()])
    assert patched.version == new.version
    assert dict(patched.items) == dict(new.items)
    assert {t: set(n) for t, n in patched.needs.items()} == {
        t: set(n) for t, n in new.needs.items()
    }
    # The names id says "same names" only when they are (a snapshot check skips on it).
    assert (patched.names_id == old.names_id) == (set(before) == set(after))


def test_version_ignores_order_and_follows_content() -> None:
    a, b = route("a", b"1"), route("b", b"2")
    assert ResourceSet.of(ROUTE, [a, b]).version == ResourceSet.of(ROUTE, [b, a]).version
    assert ResourceSet.of(ROUTE, [a, b]).version == content_version([a, b])
    assert (
        ResourceSet.of(ROUTE, [a, b]).version
        != ResourceSet.of(ROUTE, [a, route("b", b"3")]).version
    )
    assert ResourceSet.of(ROUTE, [a]).version != ResourceSet.of(ROUTE, [a, b]).version


def test_a_name_that_differs_changes_the_version_even_with_equal_bodies() -> None:
    one = ResourceSet.of(SECRET, [resource_from_bytes(SECRET, "x", b"same")])
    other = ResourceSet.of(SECRET, [resource_from_bytes(SECRET, "y", b"same")])
    assert one.version != other.version


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(DuplicateName) as info:
        ResourceSet.of(ROUTE, [route("a", b"1"), route("a", b"2")])
    assert info.value.name == "a"


def test_removing_the_last_user_of_a_reference_drops_it_from_needs() -> None:
    s = ResourceSet.of(ROUTE, [route("a", b"1", frozenset({"x"})), route("b", b"2")])
    assert s.patch(["a"], []).needs.get(CLUSTER, frozenset()) == frozenset()

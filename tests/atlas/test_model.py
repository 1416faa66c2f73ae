"""Topology: sorted, hashable and equal when the content is equal."""

from __future__ import annotations

import dataclasses

import pytest

from atlas.model import Alertmanager, DownstreamCluster, Topology


def test_topology_equal_regardless_of_order() -> None:
    a, b = DownstreamCluster("east", "192.0.2.1"), DownstreamCluster("west", "192.0.2.2")
    am = Alertmanager("am-0", 0, "10.0.0.1", 9093)
    t1 = Topology((b, a), (am,), ("10.0.0.9", "10.0.0.8", "10.0.0.9"))
    t2 = Topology((a, b), (am,), ("10.0.0.8", "10.0.0.9"))
    assert t1 == t2 and hash(t1) == hash(t2)
    assert t1.cluster_names == ("east", "west")
    assert t1.observability_addresses == ("10.0.0.8", "10.0.0.9")
    assert t1.cluster("west") == b and t1.cluster("north") is None
    assert Topology((a,)) != t1


def test_topology_is_immutable() -> None:
    t = Topology()
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.clusters = ()  # type: ignore[misc]

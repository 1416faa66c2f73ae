"""What a client should hold next, per type: make-before-break as a pure function.

* Listeners and routes that use a cluster Envoy has not yet accepted are held back (the
  version Envoy already has stays), so a route never points at a missing cluster.
* A cluster or secret that left the snapshot stays while anything Envoy has accepted still
  references it, so removals go out last, after the routes and listeners that used them.

Both rules read only the snapshot and what the client ACKed, so SotW and delta share them.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from xds_server.resources import Resource
from xds_server.snapshot import Snapshot
from xds_server.types import CLUSTER, LISTENER, ROUTE, SECRET

__all__ = ["READS", "desired"]

Acked = Mapping[str, Mapping[str, Resource]]

_GATED = frozenset({LISTENER, ROUTE})
_NONE: frozenset[str] = frozenset()
_PINNED_BY = {CLUSTER: (LISTENER, ROUTE), SECRET: (CLUSTER, LISTENER)}

READS: Mapping[str, tuple[str, ...]] = {
    t: tuple(dict.fromkeys((t, *((CLUSTER,) if t in _GATED else ()), *_PINNED_BY.get(t, ()))))
    for t in (CLUSTER, LISTENER, ROUTE, SECRET)
}
"""Per type, the types whose ACKed resources ``desired`` reads (the type itself first): a
stream need not look at a type again while those, its subscription and its snapshot set are
unchanged."""


def _wanted(snapshot: Snapshot, type_url: str, names: Set[str] | None) -> dict[str, Resource]:
    resources = snapshot.of(type_url)
    if names is None:
        return dict(resources)
    return {n: resources[n] for n in names if n in resources}


def desired(
    snapshot: Snapshot, type_url: str, names: Set[str] | None, acked: Acked
) -> dict[str, Resource]:
    """The resources of ``type_url`` to hold next; ``names`` None means wildcard."""
    want = _wanted(snapshot, type_url, names)
    have = acked.get(type_url, {})
    if type_url in _GATED:
        accepted_clusters = acked.get(CLUSTER, {}).keys()
        for name, r in list(want.items()):
            if accepted_clusters >= r.refs.get(CLUSTER, _NONE):
                continue
            if name in have:
                want[name] = have[name]
            else:
                del want[name]
    pinned_by = _PINNED_BY.get(type_url)
    if pinned_by:
        still_used = frozenset().union(
            *(r.refs.get(type_url, _NONE) for t in pinned_by for r in acked.get(t, {}).values())
        )
        for name in still_used - want.keys():
            if name in have and (names is None or name in names):
                want[name] = have[name]
    return want

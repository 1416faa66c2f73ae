"""What a client should hold next, per type: make-before-break as a pure function.

* Listeners and routes that use a cluster Envoy has not yet accepted are held back (the
  version Envoy already has stays), so a route never points at a missing cluster.
* A cluster or secret that left the snapshot stays while anything Envoy has accepted still
  references it, so removals go out last, after the routes and listeners that used them.

Both rules read only the snapshot and what the client ACKed, so SotW and delta share them.

A route that refers to the very clusters (the same ``refs`` object: the builders keep it while
a table's upstream names stay) as the version Envoy holds is not checked against the accepted
clusters again: the held version was, and the clusters it uses stay accepted while it is held
(the second rule). The observability node's route tables refer to 30,000 upstreams at 10,000
clusters; checking them on every change and ACK was the stream's largest cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from itertools import compress
from operator import is_not

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


def desired(
    snapshot: Snapshot, type_url: str, names: Set[str] | None, acked: Acked
) -> Mapping[str, Resource]:
    """The resources of ``type_url`` to hold next; ``names`` None means wildcard.

    When neither rule holds anything back, that is the snapshot's own mapping (or its
    subscribed part): the stream then knows its version without summing 30,000 digests.
    """
    resources = snapshot.of(type_url)
    want: Mapping[str, Resource] = (
        resources if names is None else {n: resources[n] for n in names if n in resources}
    )
    have = acked.get(type_url, {})
    instead: dict[str, Resource | None] = {}
    """Names whose resource is not the snapshot's: the one Envoy holds, or none."""
    if type_url in _GATED:
        accepted_clusters = acked.get(CLUSTER, {}).keys()
        for name, r in want.items():
            held = have.get(name)
            if held is r:  # what Envoy holds already: holding it back would change nothing
                continue
            needs = r.refs.get(CLUSTER, _NONE)
            if held is not None and held.refs.get(CLUSTER, _NONE) is needs:
                continue  # the same clusters as what it holds (see the module docstring)
            if not accepted_clusters >= needs:
                instead[name] = held
    pinned_by = _PINNED_BY.get(type_url)
    if pinned_by:
        for name in _pinned(snapshot, type_url, pinned_by, acked):
            if name not in want and name in have and (names is None or name in names):
                instead[name] = have[name]
    if not instead:
        return want
    changed = dict(want)
    for name, held in instead.items():
        if held is None:
            del changed[name]
        else:
            changed[name] = held
    return changed


def _pinned(
    snapshot: Snapshot, type_url: str, pinned_by: tuple[str, ...], acked: Acked
) -> frozenset[str]:
    """Names of ``type_url`` that what the client accepted of ``pinned_by`` refers to.

    Only accepted resources that are not in the snapshot as they are can refer to anything
    outside it (the snapshot was checked to hold all its own references), so only those are
    read: the observability node's route tables refer to 30,000 upstreams, and reading them
    after every ACK held the event loop at 10,000 clusters.
    """
    older: list[Resource] = []
    for t in pinned_by:
        theirs, ours = acked.get(t, {}), snapshot.of(t)
        if theirs is not ours:  # in C: 30,000 accepted upstreams pin secrets
            older += compress(theirs.values(), map(is_not, theirs.values(), map(ours.get, theirs)))
    return frozenset().union(*(r.refs.get(type_url, _NONE) for r in older))

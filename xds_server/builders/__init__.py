"""Pure builders: Topology + settings + PKI material → one checked Snapshot per node.

No I/O here: the caller reads certificates and hands them in as ``NodeCredentials``.

``build`` takes the previous ``Build`` and does only the work a change calls for: nodes whose
cluster, settings and credentials are unchanged keep their snapshot object, and the
observability node is patched rather than rebuilt. Its result equals a cold build's given the
same credentials (``Build.creds``).

Missing credentials are an ordinary state, not an error: on a follower, between the leader
writing a new CA and the leaves it issues from it, or before the leader has issued a new
node's leaf. A node without credentials is built with the last ones it had, so it keeps
working and still follows topology changes; a node that never had any has no snapshot yet
and is listed in ``Build.waiting``. Either way every other node is built as usual.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import is_not, ne
from types import MappingProxyType

from atlas.config import Settings
from atlas.model import DownstreamCluster, Topology
from xds_server.builders.downstream import downstream_snapshot, with_credentials
from xds_server.builders.observability import ObservabilityBuild, build_observability
from xds_server.builders.secrets import NodeCredentials
from xds_server.snapshot import Snapshot

__all__ = ["Build", "NodeCredentials", "build", "build_snapshots", "clear_caches", "node_ids"]


def node_ids(topology: Topology, settings: Settings) -> tuple[str, ...]:
    """Every proxy Atlas configures: the observability node, then one per cluster."""
    return (settings.observability_node, *topology.cluster_names)


@dataclass(frozen=True)
class Build:
    """Every node's snapshot, and what the next build needs to do only what changed."""

    snapshots: MappingProxyType[str, Snapshot]
    """Read-only views of dicts, here and below: the next build copies them at C speed."""
    changed: tuple[str, ...]
    """Nodes whose snapshot differs from the previous build's (all of them on a cold build)."""
    removed: tuple[str, ...]
    """Nodes the previous build had and this one has not."""
    settings: Settings
    clusters: MappingProxyType[str, DownstreamCluster]
    creds: MappingProxyType[str, NodeCredentials]
    """The credentials each node was built with: those handed in, else its last ones."""
    observability: ObservabilityBuild | None
    waiting: tuple[str, ...] = ()
    """Nodes that have never had credentials, so have no snapshot yet."""
    source: tuple[DownstreamCluster, ...] = ()
    """The topology's clusters this build was made from: while none come or go, the next
    build compares its own with them pair by pair, without looking each name up."""


def build(
    topology: Topology,
    settings: Settings,
    creds: Mapping[str, NodeCredentials],
    previous: Build | None = None,
) -> Build:
    """Snapshots for every node with credentials (see the module docstring for those without);
    raises SnapshotInconsistent on a bug.

    With ``previous`` (same settings), the clusters that may have changed are found by
    identity (the sources hand out the same objects for unchanged clusters and credentials),
    and every other node keeps its snapshot without being looked at: a one-cluster change at
    100,000 clusters costs a few comprehensions over the names, not a build loop.
    """
    obs = settings.observability_node
    before = previous.snapshots if previous is not None else MappingProxyType({})
    used = _credentials_used(obs, topology.cluster_names, creds, previous)
    reuse = previous if previous is not None and previous.settings == settings else None
    touched = _touched(topology, used, reuse) if reuse is not None else None
    snapshots: dict[str, Snapshot] = {}
    clusters: dict[str, DownstreamCluster] = {}
    if reuse is not None:  # untouched nodes keep their snapshots, unseen
        snapshots, clusters = reuse.snapshots.copy(), reuse.clusters.copy()
        snapshots.pop(obs, None)
    changed: list[str] = []
    observability = _observability(topology, settings, used, reuse, touched)
    if observability is not None:
        snapshots[obs] = observability.snapshot
        if before.get(obs) != observability.snapshot:
            changed.append(obs)
    for c in topology.clusters if touched is None else touched:
        node_creds = used.get(c.name)
        if node_creds is None:
            continue
        clusters[c.name] = c
        snapshot = _downstream(c, settings, node_creds, reuse)
        if before.get(c.name) != snapshot:
            changed.append(c.name)
        snapshots[c.name] = snapshot
    if reuse is None:
        removed = tuple(sorted(before.keys() - snapshots.keys()))
    else:
        removed = _forget_removed(topology, clusters, snapshots, len(used) - (obs in used))
    waiting: tuple[str, ...] = ()
    if len(used) != len(topology.clusters) + 1:
        waiting = tuple(n for n in (obs, *topology.cluster_names) if n not in used)
    return Build(
        MappingProxyType(snapshots),
        tuple(changed),
        removed,
        settings,
        MappingProxyType(clusters),
        MappingProxyType(used),
        observability,
        waiting,
        topology.clusters,
    )


def _observability(
    topology: Topology,
    settings: Settings,
    used: Mapping[str, NodeCredentials],
    reuse: Build | None,
    touched: Sequence[DownstreamCluster] | None,
) -> ObservabilityBuild | None:
    """None while the observability node has never had credentials."""
    obs = settings.observability_node
    obs_creds = used.get(obs)
    if obs_creds is None:
        return None
    previous = reuse.observability if reuse is not None else None
    if reuse is not None and previous is not None and previous.snapshot is not reuse.snapshots[obs]:
        touched = None  # not the previous build's: compare every cluster
    return build_observability(
        topology, settings, obs_creds, obs, previous, _Principals(used, obs), touched
    )


def _downstream(
    c: DownstreamCluster, settings: Settings, node_creds: NodeCredentials, reuse: Build | None
) -> Snapshot:
    """The previous snapshot when the cluster and its credentials are equal to those it was
    built from; when only the credentials differ (a trust-bundle change: every node at once),
    the previous one with new secrets; else a new one."""
    if reuse is not None:
        old, old_creds = reuse.clusters.get(c.name), reuse.creds.get(c.name)
        if old is not None and old_creds is not None and (old is c or old == c):
            previous = reuse.snapshots[c.name]
            if old_creds is node_creds or old_creds == node_creds:
                return previous
            return with_credentials(previous, old_creds, node_creds)
    return downstream_snapshot(c, settings, node_creds)


def _forget_removed(
    topology: Topology,
    clusters: dict[str, DownstreamCluster],
    snapshots: dict[str, Snapshot],
    expected: int,
) -> tuple[str, ...]:
    """Drop clusters that left the topology (carried over from the previous build); looked
    for only when there are more clusters than nodes with credentials."""
    if len(clusters) == expected:
        return ()
    gone = sorted(clusters.keys() - topology.by_name.keys())
    for name in gone:
        del clusters[name]
        snapshots.pop(name, None)
    return tuple(gone)


def _credentials_used(
    obs: str,
    names: Sequence[str],
    creds: Mapping[str, NodeCredentials],
    previous: Build | None,
) -> dict[str, NodeCredentials]:
    """Per node of the topology, the credentials handed in, else the last ones it had."""
    if len(creds) == len(names) + 1 and obs in creds and all(map(creds.__contains__, names)):
        return dict(creds)  # every node's, and no others (the daemon asks for exactly these)
    used = previous.creds.copy() if previous is not None else {}
    used.update(creds)
    for name in used.keys() - set(names) - {obs}:
        del used[name]
    return used


def _touched(
    topology: Topology, used: Mapping[str, NodeCredentials], previous: Build
) -> list[DownstreamCluster]:
    """The clusters whose definition or credentials are not the very objects ``previous``
    was built from (new ones, and those whose credentials came or changed), in name order.
    The loops are in C (``compress``/``map``): a tenth of a comprehension's time. While no
    node comes or goes (the usual change), pairs are compared in order, without lookups."""
    names, clusters = topology.cluster_names, topology.clusters
    if len(clusters) == len(previous.source):  # a cluster at a position it did not hold
        old: Iterable[object] = previous.source  # is another object, so it is compared
    else:
        old = map(previous.clusters.get, names)
    touched = set(compress(names, map(is_not, clusters, old)))
    old_creds = previous.creds
    if len(used) == len(old_creds) and not any(map(ne, used, old_creds)):
        changed_creds = map(is_not, used.values(), old_creds.values())
    else:
        changed_creds = map(is_not, used.values(), map(old_creds.get, used))
    touched.update(compress(used.keys(), changed_creds))
    result = []
    for name in sorted(touched):
        i = bisect_left(names, name)
        if i < len(names) and names[i] == name:  # the observability node is not a cluster
            result.append(clusters[i])
    return result


class _Principals(Mapping[str, str]):
    """The clusters that may send alerts (those with credentials) and the URI SAN admitting
    each one's credential, read from the credentials in use rather than copied out of them."""

    def __init__(self, creds: Mapping[str, NodeCredentials], obs: str) -> None:
        self._creds = creds
        self._obs = obs

    def __getitem__(self, name: str) -> str:
        if name == self._obs:
            raise KeyError(name)
        return self._creds[name].principal

    def __contains__(self, name: object) -> bool:
        return name != self._obs and name in self._creds

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._creds if n != self._obs)

    def __len__(self) -> int:
        return len(self._creds) - (self._obs in self._creds)


def build_snapshots(
    topology: Topology, settings: Settings, creds: Mapping[str, NodeCredentials]
) -> dict[str, Snapshot]:
    """A cold build's snapshots (tests, tools)."""
    return dict(build(topology, settings, creds).snapshots)


def clear_caches() -> None:
    """Forget memoized resources (benchmarks measure cold builds; memory after big changes)."""
    from xds_server.builders import common, downstream, observability, routes, secrets

    for fn in (
        downstream._local_upstreams,
        downstream._listeners,
        downstream._shared_routes,
        downstream._thanos_needs,
        downstream._THANOS_ROUTE,
        observability._PART,
        observability._listeners,
        secrets._bundle,
        common.http_listener,
        common.tcp_proxy_listener,
        common._common_tls,
        common._upstream_tls,
        common._cluster_constant,
        routes._catch_all_route,
    ):
        fn.cache_clear()

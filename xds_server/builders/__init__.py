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

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from atlas.config import Settings
from atlas.model import DownstreamCluster, Topology
from xds_server.builders.downstream import downstream_snapshot
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

    snapshots: Mapping[str, Snapshot]
    changed: tuple[str, ...]
    """Nodes whose snapshot differs from the previous build's (all of them on a cold build)."""
    removed: tuple[str, ...]
    """Nodes the previous build had and this one has not."""
    settings: Settings
    clusters: Mapping[str, DownstreamCluster]
    creds: Mapping[str, NodeCredentials]
    """The credentials each node was built with: those handed in, else its last ones."""
    observability: ObservabilityBuild | None
    waiting: tuple[str, ...] = ()
    """Nodes that have never had credentials, so have no snapshot yet."""


def build(
    topology: Topology,
    settings: Settings,
    creds: Mapping[str, NodeCredentials],
    previous: Build | None = None,
) -> Build:
    """Snapshots for every node with credentials (see the module docstring for those without);
    raises SnapshotInconsistent on a bug."""
    before: Mapping[str, Snapshot] = previous.snapshots if previous is not None else {}
    last_creds: Mapping[str, NodeCredentials] = previous.creds if previous is not None else {}
    if previous is not None and previous.settings != settings:
        previous = None  # everything depends on settings: build cold, but still diff
    used: dict[str, NodeCredentials] = {}
    waiting: list[str] = []

    def credentials(node: str) -> NodeCredentials | None:
        found = creds.get(node) or last_creds.get(node)
        if found is None:
            waiting.append(node)
        else:
            used[node] = found
        return found

    obs = settings.observability_node
    snapshots: dict[str, Snapshot] = {}
    changed: list[str] = []
    observability = previous.observability if previous is not None else None
    obs_creds = credentials(obs)
    cluster_creds = {c.name: found for c in topology.clusters if (found := credentials(c.name))}
    if obs_creds is not None:
        members = {name: c.principal for name, c in cluster_creds.items()}
        observability = build_observability(
            topology, settings, obs_creds, obs, observability, members
        )
        snapshots[obs] = observability.snapshot
        if before.get(obs) != observability.snapshot:
            changed.append(obs)
    clusters: dict[str, DownstreamCluster] = {}
    old_clusters = previous.clusters if previous is not None else {}
    old_creds = previous.creds if previous is not None else {}
    for c in topology.clusters:
        node_creds = cluster_creds.get(c.name)
        if node_creds is None:
            continue
        clusters[c.name] = c
        # Unchanged cluster and credentials: keep the snapshot (the sources hand out the
        # same objects for unchanged clusters, so this is an identity test at 10,000 nodes).
        old, old_node_creds = old_clusters.get(c.name), old_creds.get(c.name)
        if (
            old is not None
            and old_node_creds is not None
            and (old is c or old == c)
            and (old_node_creds is node_creds or old_node_creds == node_creds)
        ):
            snapshots[c.name] = before[c.name]
            continue
        snapshot = downstream_snapshot(c, settings, node_creds)
        if before.get(c.name) != snapshot:
            changed.append(c.name)
        snapshots[c.name] = snapshot
    removed = tuple(sorted(before.keys() - snapshots.keys()))
    return Build(
        MappingProxyType(snapshots),
        tuple(changed),
        removed,
        settings,
        MappingProxyType(clusters),
        MappingProxyType(used),
        observability,
        tuple(waiting),
    )


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

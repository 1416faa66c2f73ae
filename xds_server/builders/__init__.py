"""Pure builders: Topology + settings + PKI material → one checked Snapshot per node.

No I/O here: the caller reads certificates and hands them in as ``NodeCredentials``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from atlas.config import Settings
from atlas.model import DownstreamCluster, Topology
from xds_server.builders.downstream import downstream_resources
from xds_server.builders.observability import observability_resources
from xds_server.builders.secrets import NodeCredentials
from xds_server.snapshot import Snapshot

__all__ = ["NodeCredentials", "build_snapshots", "clear_caches", "node_ids"]


def node_ids(topology: Topology, settings: Settings) -> tuple[str, ...]:
    """Every proxy Atlas configures: the observability node, then one per cluster."""
    return (settings.observability_node, *topology.cluster_names)


def build_snapshots(
    topology: Topology, settings: Settings, creds: Mapping[str, NodeCredentials]
) -> dict[str, Snapshot]:
    """Snapshots for every node that has credentials; raises SnapshotInconsistent on a bug."""
    obs = settings.observability_node
    snapshots = {obs: Snapshot.build(obs, observability_resources(topology, settings, creds[obs]))}
    for c in topology.clusters:
        if c.name in creds:
            snapshots[c.name] = _downstream_snapshot(c, settings, creds[c.name])
    return snapshots


@lru_cache(maxsize=16384)
def _downstream_snapshot(
    c: DownstreamCluster, settings: Settings, creds: NodeCredentials
) -> Snapshot:
    """Memoized: a node whose cluster, settings and credentials are unchanged is not rebuilt."""
    return Snapshot.build(c.name, downstream_resources(c, settings, creds))


def clear_caches() -> None:
    """Forget memoized resources (benchmarks measure cold builds; memory after big changes)."""
    from xds_server.builders import common, observability, routes

    for fn in (
        _downstream_snapshot,
        common.cluster,
        common.http_listener,
        common.tcp_proxy_listener,
        common._common_tls,
        common._upstream_tls,
        common._cluster_constant,
        common._cluster_constant_built,
        common._endpoints,
        routes._catch_all_route,
        observability._cluster_part,
        routes._vhost_entry,
        routes._prefix_entries,
    ):
        fn.cache_clear()

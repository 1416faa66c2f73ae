"""Shared topologies and credentials for the xDS unit tests."""

from __future__ import annotations

from functools import cache

from atlas.config import Settings
from atlas.model import Alertmanager, DownstreamCluster, Topology, Upstream
from atlas.pki import OBSERVABILITY_URI, cluster_uri, create_ca, issue
from xds_server.builders import NodeCredentials, build_snapshots
from xds_server.snapshot import Snapshot

EAST = DownstreamCluster(
    "east",
    "192.0.2.11",
    replicas=2,
    thanos=Upstream("sidecar.mon.svc", 10901),
    thanos_replica_template="prom-{i}.mon.svc",
)
WEST = DownstreamCluster("west", "envoy.west.example.net")
AM = Alertmanager("alertmanager-0", 0, "10.43.0.20", 9093)
TOPOLOGY = Topology((EAST, WEST), (AM,))


@cache
def creds(node: str) -> NodeCredentials:
    ca = _ca()
    uri = OBSERVABILITY_URI if node == "atlas" else cluster_uri(node)
    leaf = issue(ca, uri)
    return NodeCredentials(leaf.cert_pem, leaf.key_pem, ca.cert_pem)


@cache
def _ca():  # type: ignore[no-untyped-def]
    return create_ca()


def snapshots(
    topology: Topology = TOPOLOGY, settings: Settings | None = None
) -> dict[str, Snapshot]:
    settings = settings or Settings()
    nodes = ["atlas", *topology.cluster_names]
    return build_snapshots(topology, settings, {n: creds(n) for n in nodes})

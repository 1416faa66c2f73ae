"""The observability Envoy (node ``atlas``): listeners 10900-10904 and their upstreams."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from atlas.config import Settings
from atlas.model import Alertmanager, DownstreamCluster, Topology, sidecar_target
from atlas.pki import cluster_uri
from xds_server.builders.common import PeerMatch, cluster, http_listener, tcp_proxy_listener
from xds_server.builders.routes import (
    Host,
    Prefix,
    by_host,
    host_entries,
    host_table,
    prefix_entries,
    prefix_table,
)
from xds_server.builders.secrets import NodeCredentials, node_secrets
from xds_server.resources import Resource

__all__ = ["CONTROL_PLANE_CLUSTER", "observability_resources", "upstream_name"]

CONTROL_PLANE_CLUSTER = "atlas_control_plane"
ANY_DOWNSTREAM = PeerMatch(cluster_uri(""), prefix=True)


def upstream_name(cluster_name: str, service: str) -> str:
    """``east_thanos``: cluster names are DNS labels, so ``_`` cannot collide."""
    return f"{cluster_name}_{service}"


@dataclass(frozen=True)
class _ClusterPart:
    """Everything one downstream cluster adds to the observability node, built once."""

    upstreams: tuple[Resource, ...]
    thanos_hosts: bytes
    prometheus_prefix: bytes
    alertmanager_prefix: bytes


@lru_cache(maxsize=16384)
def _cluster_part(c: DownstreamCluster, settings: Settings) -> _ClusterPart:
    """Memoized per cluster, so a one-cluster change rebuilds one part and joins the rest."""
    ports = settings.downstream_ports
    peer = PeerMatch(cluster_uri(c.name))
    timeout = settings.network.connect_timeout
    upstreams = tuple(
        cluster(
            upstream_name(c.name, svc),
            c.envoy_address,
            port,
            http2=True,
            peer=peer,
            connect_timeout=timeout,
        )
        for svc, port in (
            ("thanos", ports.thanos),
            ("prometheus", ports.prometheus),
            ("alertmanager", ports.alertmanager),
        )
    )
    return _ClusterPart(
        upstreams=upstreams,
        thanos_hosts=host_entries(
            Host(
                f"{c.name}-{i}",
                (sidecar_target(c.name, i),),
                upstream_name(c.name, "thanos"),
                streaming=True,
            )
            for i in range(c.replicas)
        ),
        prometheus_prefix=prefix_entries(
            [Prefix(f"/prom/{c.name}/", upstream_name(c.name, "prometheus"))]
        ),
        alertmanager_prefix=prefix_entries(
            [Prefix(f"/am/{c.name}/", upstream_name(c.name, "alertmanager"))]
        ),
    )


def observability_resources(
    topology: Topology, settings: Settings, creds: NodeCredentials
) -> list[Resource]:
    ports = settings.observability_ports
    net = settings.network
    listen = net.observability_listen_address
    resources = node_secrets(creds)
    resources.append(
        cluster(
            CONTROL_PLANE_CLUSTER,
            net.control_plane_address,
            net.control_plane_port,
            http2=False,
            connect_timeout=net.connect_timeout,
        )
    )
    parts = [_cluster_part(c, settings) for c in topology.clusters]
    for part in parts:
        resources += part.upstreams
    alertmanagers: dict[int, Alertmanager] = {}
    for am in topology.alertmanagers:
        alertmanagers.setdefault(am.replica, am)
    for replica, am in sorted(alertmanagers.items()):
        resources.append(
            cluster(
                f"alertmanager_{replica}",
                am.address,
                am.port,
                http2=False,
                connect_timeout=net.connect_timeout,
            )
        )

    resources += [
        host_table(
            "thanos",
            (p.thanos_hosts for p in parts),
            (upstream_name(c.name, "thanos") for c in topology.clusters),
        ),
        prefix_table(
            "prometheus-ui",
            (p.prometheus_prefix for p in parts),
            (upstream_name(c.name, "prometheus") for c in topology.clusters),
        ),
        prefix_table(
            "alertmanager-ui",
            (p.alertmanager_prefix for p in parts),
            (upstream_name(c.name, "alertmanager") for c in topology.clusters),
        ),
        by_host(
            "alert-intake",
            (
                Host(
                    f"alertmanager-{r}",
                    (f"alertmanager-{r}", f"alertmanager-{r}.*"),
                    f"alertmanager_{r}",
                )
                for r in sorted(alertmanagers)
            ),
        ),
        tcp_proxy_listener("ads", listen, ports.ads, target=CONTROL_PLANE_CLUSTER),
        http_listener("thanos", listen, ports.thanos, route="thanos"),
        http_listener("alertmanager-ui", listen, ports.alertmanager_ui, route="alertmanager-ui"),
        http_listener(
            "alert-intake", listen, ports.alert_intake, route="alert-intake", peer=ANY_DOWNSTREAM
        ),
        http_listener("prometheus-ui", listen, ports.prometheus_ui, route="prometheus-ui"),
    ]
    return resources

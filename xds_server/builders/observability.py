"""The observability Envoy (node ``atlas``): listeners 10900-10904 and their upstreams."""

from __future__ import annotations

from functools import lru_cache

from atlas.config import Settings
from atlas.model import Alertmanager, DownstreamCluster, Topology, sidecar_target
from atlas.pki import cluster_uri
from xds_server.builders.common import PeerMatch, cluster, http_listener, tcp_proxy_listener
from xds_server.builders.routes import Host, Prefix, by_host, by_prefix
from xds_server.builders.secrets import NodeCredentials, node_secrets
from xds_server.resources import Resource

__all__ = ["CONTROL_PLANE_CLUSTER", "observability_resources", "upstream_name"]

CONTROL_PLANE_CLUSTER = "atlas_control_plane"
ANY_DOWNSTREAM = PeerMatch(cluster_uri(""), prefix=True)


def upstream_name(cluster_name: str, service: str) -> str:
    """``east_thanos``: cluster names are DNS labels, so ``_`` cannot collide."""
    return f"{cluster_name}_{service}"


@lru_cache(maxsize=16384)
def _downstream_upstreams(c: DownstreamCluster, settings: Settings) -> tuple[Resource, ...]:
    ports = settings.downstream_ports
    peer = PeerMatch(cluster_uri(c.name))
    timeout = settings.network.connect_timeout
    return tuple(
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
    for c in topology.clusters:
        resources += _downstream_upstreams(c, settings)
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
        by_host(
            "thanos",
            (
                Host(
                    f"{c.name}-{i}",
                    (sidecar_target(c.name, i),),
                    upstream_name(c.name, "thanos"),
                    streaming=True,
                )
                for c in topology.clusters
                for i in range(c.replicas)
            ),
        ),
        by_prefix(
            "prometheus-ui",
            (
                Prefix(f"/prom/{c.name}/", upstream_name(c.name, "prometheus"))
                for c in topology.clusters
            ),
        ),
        by_prefix(
            "alertmanager-ui",
            (
                Prefix(f"/am/{c.name}/", upstream_name(c.name, "alertmanager"))
                for c in topology.clusters
            ),
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

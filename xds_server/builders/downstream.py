"""A downstream Envoy (node ``<cluster>``): listeners 11901-11904 and the local upstreams."""

from __future__ import annotations

from atlas.config import BIND_ENVOY_ADDRESS, Settings
from atlas.model import DownstreamCluster, sidecar_target
from atlas.pki import OBSERVABILITY_URI
from xds_server.builders.common import PeerMatch, cluster, http_listener
from xds_server.builders.routes import Host, by_host
from xds_server.builders.secrets import NodeCredentials, node_secrets
from xds_server.resources import Resource

__all__ = ["OBSERVABILITY_ALERTS", "downstream_resources"]

OBSERVABILITY_ALERTS = "observability_alerts"
OBSERVABILITY = PeerMatch(OBSERVABILITY_URI)


def downstream_resources(
    c: DownstreamCluster, settings: Settings, creds: NodeCredentials
) -> list[Resource]:
    ports = settings.downstream_ports
    net = settings.network
    listen = (
        c.envoy_address
        if net.downstream_listen_address == BIND_ENVOY_ADDRESS
        else net.downstream_listen_address
    )
    timeout = net.connect_timeout
    resources = node_secrets(creds)
    for i in range(c.replicas):
        sidecar = c.thanos_replica(i)
        resources.append(
            cluster(f"thanos_{i}", sidecar.host, sidecar.port, http2=True, connect_timeout=timeout)
        )
    resources += [
        cluster(
            "prometheus", c.prometheus.host, c.prometheus.port, http2=False, connect_timeout=timeout
        ),
        cluster(
            "alertmanager",
            c.alertmanager.host,
            c.alertmanager.port,
            http2=False,
            connect_timeout=timeout,
        ),
        cluster(
            OBSERVABILITY_ALERTS,
            net.observability_address,
            settings.observability_ports.alert_intake,
            http2=True,
            peer=OBSERVABILITY,
            connect_timeout=timeout,
        ),
        by_host(
            "thanos",
            (
                Host(f"{c.name}-{i}", (sidecar_target(c.name, i),), f"thanos_{i}", streaming=True)
                for i in range(c.replicas)
            ),
        ),
        by_prefix_root("prometheus", "prometheus"),
        by_prefix_root("alertmanager", "alertmanager"),
        by_host("alert-relay", (Host("observability", ("*",), OBSERVABILITY_ALERTS),)),
        http_listener(
            "thanos", listen, ports.thanos, route="thanos", peer=OBSERVABILITY, http2_only=True
        ),
        http_listener(
            "alertmanager", listen, ports.alertmanager, route="alertmanager", peer=OBSERVABILITY
        ),
        http_listener("alert-relay", listen, ports.alert_relay, route="alert-relay"),
        http_listener(
            "prometheus", listen, ports.prometheus, route="prometheus", peer=OBSERVABILITY
        ),
    ]
    return resources


def by_prefix_root(name: str, target: str) -> Resource:
    """Everything to ``target``: the observability side already stripped ``/prom/<c>``."""
    return by_host(name, (Host(name, ("*",), target),))

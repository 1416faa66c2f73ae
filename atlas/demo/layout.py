"""Where every part of the demo lives, and what it is told: addresses, manifests, settings,
Prometheus and Alertmanager configurations. Pure data: ``parts.py`` starts things.

Every part has its own loopback address, so the real ports work side by side:

* ``<base>.0.1``: Atlas (ADS 18000, DNS 5353, HTTP 9180);
* ``<base>.0.10``: the observability Envoy (10900-10904); ``<base>.0.20``: its Alertmanager;
* ``<base>.<k>.10``: cluster k's Envoy (11901-11904), ``.21`` its Thanos sidecar (10901),
  ``.30`` its Prometheus (9090), ``.40`` its Alertmanager (9093).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atlas.config import (
    DEFAULT_ADS_PORT,
    DEFAULT_DNS_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_NAMESPACE,
    DownstreamPorts,
    EnvoySettings,
    ObservabilityPorts,
)
from atlas.model import (
    ALERTMANAGER_POD_SELECTOR_KEY,
    DEFAULT_ALERTMANAGER,
    DEFAULT_PROMETHEUS,
    DEFAULT_THANOS,
    LABEL_CLUSTER,
    LABEL_REPLICAS,
    STOREAPI_PORT,
)

__all__ = [
    "ADMIN_PORT",
    "CLUSTER_NAMES",
    "DEMO_ALERT",
    "DNS_PORT",
    "HTTP_PORT",
    "ClusterLayout",
    "Layout",
]

CLUSTER_NAMES = ("east", "west", "north", "south", "central", "alpha", "beta", "gamma")
DNS_PORT, HTTP_PORT = DEFAULT_DNS_PORT, DEFAULT_HTTP_PORT
SIDECAR_PORT, PROMETHEUS_PORT, ALERTMANAGER_PORT = (
    DEFAULT_THANOS.port,
    DEFAULT_PROMETHEUS.port,
    DEFAULT_ALERTMANAGER.port,
)
ADMIN_PORT = EnvoySettings().admin_port
DEMO_ALERT = "AtlasDemoAlert"


@dataclass(frozen=True)
class ClusterLayout:
    name: str
    index: int
    base: str

    def ip(self, last: int) -> str:
        return f"{self.base}.{self.index}.{last}"

    @property
    def envoy(self) -> str:
        return self.ip(10)

    @property
    def sidecar(self) -> tuple[str, int]:
        return self.ip(21), SIDECAR_PORT

    @property
    def prometheus(self) -> tuple[str, int]:
        return self.ip(30), PROMETHEUS_PORT

    @property
    def alertmanager(self) -> tuple[str, int]:
        return self.ip(40), ALERTMANAGER_PORT

    def manifest(self) -> dict[str, Any]:
        annotations = {
            "goatlas.io/thanos-service": self.sidecar[0],
            "goatlas.io/thanos-service-port": str(self.sidecar[1]),
            "goatlas.io/prometheus-service": self.prometheus[0],
            "goatlas.io/prometheus-service-port": str(self.prometheus[1]),
            "goatlas.io/alertmanager-service": self.alertmanager[0],
            "goatlas.io/alertmanager-service-port": str(self.alertmanager[1]),
        }
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": self.name,
                "namespace": DEFAULT_NAMESPACE,
                "labels": {LABEL_CLUSTER: "true", LABEL_REPLICAS: "1", "goatlas.io/group": "demo"},
                "annotations": annotations,
            },
            "spec": {
                "externalIPs": [self.envoy],
                "ports": [{"name": "thanos", "port": STOREAPI_PORT}],
            },
        }


@dataclass(frozen=True)
class Layout:
    base: str = "127.77"
    """The first two octets of every address (a /16 of loopback)."""

    @property
    def atlas(self) -> str:
        return f"{self.base}.0.1"

    @property
    def observability(self) -> str:
        return f"{self.base}.0.10"

    @property
    def alertmanager(self) -> tuple[str, int]:
        return f"{self.base}.0.20", ALERTMANAGER_PORT

    def cluster(self, index: int) -> ClusterLayout:
        name = CLUSTER_NAMES[index - 1] if index <= len(CLUSTER_NAMES) else f"cluster{index}"
        return ClusterLayout(name, index, self.base)

    def settings(self) -> dict[str, Any]:
        """Atlas's --config: every Envoy on its own address, the real ports."""
        return {
            "network": {
                "observability_listen_address": self.observability,
                "downstream_listen_address": "envoy-address",
                "observability_address": self.observability,
                "control_plane_address": self.atlas,
                "control_plane_port": DEFAULT_ADS_PORT,
                "connect_timeout": 1.0,
            },
            "poll_interval": 0.1,
        }

    def alertmanager_manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "alertmanager-0",
                "namespace": DEFAULT_NAMESPACE,
                "labels": {"app": "kube-prometheus-stack-alertmanager"},
            },
            "spec": {
                "clusterIP": self.alertmanager[0],
                "selector": {ALERTMANAGER_POD_SELECTOR_KEY: "alertmanager-demo-0"},
                "ports": [{"name": "http-web", "port": self.alertmanager[1]}],
            },
        }

    def ui_urls(self, cluster: ClusterLayout) -> tuple[str, str]:
        obs = ObservabilityPorts()
        return (
            f"http://{self.observability}:{obs.prometheus_ui}/prom/{cluster.name}/",
            f"http://{self.observability}:{obs.alertmanager_ui}/am/{cluster.name}/",
        )

    def prometheus_config(self, cluster: ClusterLayout) -> dict[str, Any]:
        """Alerts go to ``alertmanager-0:11903`` through the cluster's Envoy relay. In a
        cluster the Service alertmanager-0 resolves to that Envoy; here, with no cluster DNS
        and no root, Prometheus reaches it as its HTTP proxy, so the Host is the same."""
        relay = DownstreamPorts().alert_relay
        host, port = cluster.prometheus
        return {
            "global": {
                "scrape_interval": "15s",
                "evaluation_interval": "5s",
                "external_labels": {"cluster": cluster.name},
            },
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"{host}:{port}"]}]}
            ],
            "alerting": {
                "alertmanagers": [
                    {
                        "api_version": "v2",
                        "proxy_url": f"http://{cluster.envoy}:{relay}",
                        "static_configs": [{"targets": [f"alertmanager-0:{relay}"]}],
                    }
                ]
            },
        }

    @staticmethod
    def prometheus_rules(cluster: ClusterLayout) -> dict[str, Any]:
        return {
            "groups": [
                {
                    "name": "atlas-demo",
                    "rules": [
                        {
                            "alert": DEMO_ALERT,
                            "expr": "vector(1)",
                            "labels": {"severity": "info", "cluster": cluster.name},
                            "annotations": {
                                "summary": f"Fired in {cluster.name}, sent through its Envoy"
                            },
                        }
                    ],
                }
            ]
        }

    @staticmethod
    def alertmanager_config() -> dict[str, Any]:
        return {
            "route": {"receiver": "null", "group_wait": "1s", "group_interval": "5s"},
            "receivers": [{"name": "null"}],
        }

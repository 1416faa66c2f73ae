"""The network a randomized run changes: Atlas, the observability Envoy, up to three
downstream Envoys, a grpc-go sidecar for every replica that may exist, and web stand-ins.

Addresses follow ``AtlasNetwork``'s plan (127.<net>.<third>.<last>): cluster k (east 1,
west 2, north 3) has its Envoy at .1k (or .1k on third octet 1, its alternate address), the
sidecar of replica i at third octet i, last .2k, and its Prometheus and Alertmanager at .3k
and .4k; the observability Alertmanager at .50.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from atlas.demo.ports import free_port, listener_ports
from atlas.demo.stub import WebStandIn
from tests.e2e.network import AtlasNetwork, GoSidecar
from tests.e2e.randomized.model import CLUSTERS, MAX_REPLICAS, Wanted
from tests.fakes.objects import service_object

INDEX = {c: k for k, c in enumerate(CLUSTERS, start=1)}
ALERTMANAGER_REPLICA_HOST = "alertmanager-0"
"""The Host a downstream Prometheus sends alerts with (the chart's Service name)."""


class RandomNetwork(AtlasNetwork):
    def __init__(self, root: Path, *, api_type: str, atlas_argv: list[str] | None = None) -> None:
        self._atlas_argv = atlas_argv
        super().__init__(
            root,
            api_type=api_type,
            sidecars="go",
            settings={
                # Leaves renewed all the time: a new one every few seconds per node.
                "pki": {"leaf_lifetime": 36},
                "poll_interval": 0.05,
            },
        )
        hosts = [self.obs_ip, *(self.address(c, alt) for c in CLUSTERS for alt in (False, True))]
        self.obs_ports, self.ds_ports = listener_ports(*hosts)
        self.envoy_ips = {c: self.address(c, False) for c in CLUSTERS}
        self.sidecar_port = free_port(
            *(self.ip(20 + INDEX[c], i) for c in CLUSTERS for i in range(MAX_REPLICAS))
        )

    def address(self, cluster: str, alternate: bool) -> str:
        return self.ip(10 + INDEX[cluster], 1 if alternate else 0)

    def cluster_manifest(self, name: str, wanted: Wanted, *, broken: bool = False) -> str:
        k = INDEX[name]
        ann = {
            "goatlas.io/thanos-service": self.ip(20 + k),
            "goatlas.io/thanos-service-port": str(self.sidecar_port),
            "goatlas.io/thanos-replica-service": f"127.{self.net}.{{i}}.{20 + k}",
            "goatlas.io/prometheus-service": self.ip(30 + k),
            "goatlas.io/prometheus-service-port": str(self.web_port),
            "goatlas.io/alertmanager-service": self.ip(40 + k),
            "goatlas.io/alertmanager-service-port": str(self.web_port),
        }
        labels = {"goatlas.io/cluster": "true", "goatlas.io/replicas": str(wanted.replicas)}
        if broken:
            labels["goatlas.io/replicas"] = "many"
        if wanted.group:
            labels["goatlas.io/group"] = wanted.group
        address = self.address(name, wanted.alternate_address)
        spec: dict[str, Any] = {}
        if wanted.by_annotation:
            ann["goatlas.io/envoy-address"] = address
        else:
            spec["externalIPs"] = [address]
        return yaml.safe_dump(service_object(name, labels=labels, annotations=ann, spec=spec))

    def start(self) -> None:
        """Every part but the downstream Envoys and their manifests (a run adds clusters)."""
        self.source.mkdir(parents=True)
        self.pki.ca()
        (self.source / "alertmanager.yaml").write_text(
            yaml.safe_dump(self.alertmanager_manifest(ALERTMANAGER_REPLICA_HOST))
        )
        for c in CLUSTERS:
            for i in range(MAX_REPLICAS):
                name = f"{c}-{i}"
                log = self.root / f"sidecar-{name}.log"
                labels = {"cluster": c, "replica": str(i)}
                self.sidecars[name] = GoSidecar(
                    name, self.ip(20 + INDEX[c], i), self.sidecar_port, labels, log
                )
            for kind, last in (("prom", 30), ("am", 40)):
                stub = f"{kind}-{c}"
                self.webs[stub] = WebStandIn(self.ip(last + INDEX[c]), self.web_port, stub)
        self.webs["am-obs"] = WebStandIn(self.ip(50), self.web_port, "am-obs")
        self.start_atlas()
        self.start_observability_envoy()

    def atlas_argv(self) -> list[str]:
        """How Atlas is started: the console script, or a run's own (a deliberately broken
        Atlas, to show that the run catches it)."""
        return self._atlas_argv or super().atlas_argv()

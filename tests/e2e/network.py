"""A whole Atlas network on loopback: Atlas (directory source), the observability Envoy,
downstream Envoys, test sidecars, Prometheus/Alertmanager stand-ins. Every process and server is
started here and stopped in ``stop()``, which the fixtures call also when a test fails."""

from __future__ import annotations

import json
import random
import socket
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import yaml

from atlas.demo.envoy import Envoy
from atlas.demo.launch import atlas_command, serve_directory_argv
from atlas.demo.ports import free_port, listener_ports
from atlas.demo.processes import Process
from atlas.demo.stub import WebStandIn
from atlas.pki import OBSERVABILITY_URI, cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore, bootstrap_name
from tests.fakes.objects import service_object
from tests.fakes.thanos import Sidecar, info
from tests.gotools import go_tool
from tests.polling import wait_until


class GoSidecar(Process):
    """The grpc-go Thanos sidecar (tests/go): grpc-go's own server and ping policy."""

    def __init__(self, name: str, host: str, port: int, labels: dict[str, str], log: Path) -> None:
        self.address = (host, port)
        pairs = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        argv = [go_tool("thanos-sidecar"), "-listen", f"{host}:{port}", "-labels", pairs]
        super().__init__(name, argv, log)
        self.start_and_wait(self._listening, within=10, what=f"{name} listening")

    def _listening(self) -> bool:
        with socket.create_connection(self.address, timeout=1):
            return True

    def accepted(self) -> int:
        """Connections the sidecar accepted so far (each one is logged)."""
        return self.log.read_text(errors="replace").count("accepted connection")


class AtlasNetwork:
    """Addresses: 127.<net>.0.x per part; ports picked free per run."""

    def __init__(
        self,
        root: Path,
        *,
        api_type: str = "GRPC",
        sidecars: str = "python",
        real_prometheus: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.api_type = api_type
        self.sidecar_kind = sidecars
        """``python`` (tests/fakes/thanos.py) or ``go`` (tests/go, grpc-go's server)."""
        self.real_prometheus = real_prometheus
        """East's Prometheus and the observability Alertmanager are Debian's real ones
        (tests/e2e/real.py); Atlas's DNS also listens on port 53 for Prometheus."""
        self.extra_settings = settings or {}
        """More top-level keys for Atlas's settings file (``ads`` limits, say)."""
        self.net = random.randint(100, 250)
        ip = self.ip
        self.atlas_ip, self.obs_ip = ip(5), ip(10)
        self.envoy_ips = {"east": ip(11), "west": ip(12), "north": ip(13)}
        envoy_hosts = [self.obs_ip, *self.envoy_ips.values()]
        self.obs_ports, self.ds_ports = listener_ports(*envoy_hosts)
        self.ads_port = free_port(self.atlas_ip)
        self.http_port = free_port(self.atlas_ip)
        self.dns_port = free_port(self.atlas_ip)
        self.sidecar_port = free_port(ip(21), ip(21, 1), ip(22), ip(23))
        self.web_port = free_port(*(ip(n) for n in (31, 32, 33, 41, 42, 43, 50)))
        self.source = root / "clusters"
        self.state = root / "state"
        self.parts: list[Any] = []
        self.envoys: dict[str, Envoy] = {}
        self.sidecars: dict[str, Sidecar | GoSidecar] = {}
        self.webs: dict[str, WebStandIn] = {}
        self.prometheus: Any = None
        self.alertmanager: Any = None
        self.atlas: Process | None = None
        self.pki = CertificateManager(DirectoryStore(self.state))

    def ip(self, last: int, third: int = 0) -> str:
        """This network's loopback address ``127.<net>.<third>.<last>``."""
        return f"127.{self.net}.{third}.{last}"

    # -- configuration ------------------------------------------------------------------
    def manifest(self, name: str, index: int, replicas: int = 1) -> dict[str, Any]:
        ann = {
            "goatlas.io/thanos-service": self.ip(20 + index),
            "goatlas.io/thanos-service-port": str(self.sidecar_port),
            "goatlas.io/prometheus-service": self.ip(30 + index),
            "goatlas.io/prometheus-service-port": str(self.web_port),
            "goatlas.io/alertmanager-service": self.ip(40 + index),
            "goatlas.io/alertmanager-service-port": str(self.web_port),
        }
        if replicas > 1:
            ann["goatlas.io/thanos-replica-service"] = f"127.{self.net}.{{i}}.{20 + index}"
        labels = {"goatlas.io/cluster": "true", "goatlas.io/replicas": str(replicas)}
        spec = {"externalIPs": [self.envoy_ips[name]]}
        return service_object(name, labels=labels, annotations=ann, spec=spec)

    def alertmanager_manifest(self, name: str) -> dict[str, Any]:
        """The observability Alertmanager's per-replica Service, as kube-prometheus-stack
        makes it (its web stand-in at ``ip(50)``)."""
        spec = {
            "clusterIP": self.ip(50),
            "selector": {"statefulset.kubernetes.io/pod-name": "alertmanager-main-0"},
            "ports": [{"name": "http-web", "port": self.web_port}],
        }
        labels = {"app": "kube-prometheus-stack-alertmanager"}
        return service_object(name, labels=labels, spec=spec)

    def write_manifest(self, name: str, index: int, replicas: int = 1) -> Path:
        path = self.source / f"{name}.yaml"
        path.write_text(yaml.safe_dump(self.manifest(name, index, replicas)))
        return path

    def settings(self, **downstream_overrides: int) -> dict[str, Any]:
        return {
            "observability_ports": self.obs_ports,
            "downstream_ports": {**self.ds_ports, **downstream_overrides},
            "network": {
                "observability_listen_address": self.obs_ip,
                "downstream_listen_address": "envoy-address",
                "observability_address": self.obs_ip,
                "control_plane_address": self.atlas_ip,
                "control_plane_port": self.ads_port,
                "connect_timeout": 1.0,
            },
            "poll_interval": 0.1,
            **self.extra_settings,
        }

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self.source.mkdir(parents=True)
        self.pki.ca()
        self.write_manifest("east", 1, replicas=2)
        self.write_manifest("west", 2)
        (self.source / "alertmanager.yaml").write_text(
            yaml.safe_dump(self.alertmanager_manifest("alertmanager-0"))
        )
        for name, host, labels in (
            ("east-0", self.ip(21), {"cluster": "east", "replica": "0"}),
            ("east-1", self.ip(21, 1), {"cluster": "east", "replica": "1"}),
            ("west-0", self.ip(22), {"cluster": "west", "replica": "0"}),
            ("north-0", self.ip(23), {"cluster": "north", "replica": "0"}),
        ):
            if self.sidecar_kind == "go":
                log = self.root / f"sidecar-{name}.log"
                self.sidecars[name] = GoSidecar(name, host, self.sidecar_port, labels, log)
            else:
                self.sidecars[name] = Sidecar(host, self.sidecar_port, labels)
        stubs = [
            ("prom-east", 31),
            ("prom-west", 32),
            ("prom-north", 33),
            ("am-east", 41),
            ("am-west", 42),
            ("am-north", 43),
            ("am-obs", 50),
        ]
        if self.real_prometheus:
            self._start_real_parts()
            stubs = [(n, last) for n, last in stubs if n not in ("prom-east", "am-obs")]
        for name, last in stubs:
            self.webs[name] = WebStandIn(self.ip(last), self.web_port, name)
        self.start_atlas()
        self.start_observability_envoy()
        for name in ("east", "west"):
            self.start_cluster_envoy(name)
        wait_until(self.settled, within=60, what="every Envoy in sync and every replica routed")

    def settled(self) -> bool:
        """Every Envoy connected and holding what Atlas serves it, and every configured replica
        answering through the observability Envoy. A test that stops Atlas before then finds a
        downstream Envoy that never got its listeners (it reaches Atlas only through the
        observability Envoy, so it connects last) and blames the wrong step."""
        nodes = {n["node"]: n for n in self.status()["nodes"]}
        node_ok = [
            nodes.get(name, {}).get(key) for name in self.envoys for key in ("connected", "in_sync")
        ]
        if not all(node_ok):
            return False
        try:
            for target in ("east-0", "east-1", "west-0"):
                info(self.thanos_address, self.thanos_authority(target))
        except grpc.RpcError:
            return False
        return True

    def start_observability_envoy(self, runtime: dict[str, Any] | None = None) -> Envoy:
        """The observability Envoy, with ``runtime`` flags if given."""
        return self.start_envoy(
            "atlas",
            self.obs_ip,
            (self.atlas_ip, self.ads_port),
            OBSERVABILITY_URI,
            "bootstrap-observability",
            runtime,
        )

    def restart_observability_envoy(self, runtime: dict[str, Any] | None = None) -> Envoy:
        """The observability Envoy stopped and started again (its listeners on the same
        addresses), with ``runtime`` flags if given."""
        self.envoys.pop("atlas").stop()
        return self.start_observability_envoy(runtime)

    def start_cluster_envoy(self, name: str) -> Envoy:
        """The cluster's Envoy, with the bootstrap credential Atlas's store holds for it (what
        ``atlas cluster values`` hands out; issued now if there is none)."""
        return self.start_envoy(
            name,
            self.envoy_ips[name],
            (self.obs_ip, self.obs_ports["ads"]),
            cluster_uri(name),
            bootstrap_name(name),
        )

    def bootstrap_files(self, name: str) -> tuple[Path, Path]:
        """The certificate and key the cluster's Envoy connects to ADS with."""
        certs = self.root / f"envoy-{name}" / "certs"
        return certs / "tls.crt", certs / "tls.key"

    def leaf_files(self, name: str) -> tuple[Path, Path]:
        """The node's current data-plane leaf, as Atlas stores it and pushes it over SDS."""
        pki = self.state / "pki"
        return pki / f"node-{name}.crt", pki / f"node-{name}.key"

    def add_cluster(self, name: str, index: int, replicas: int = 1) -> Envoy:
        """As an operator adds one: its Service, then (once Atlas knows it) its Envoy."""
        self.write_manifest(name, index, replicas)
        wait_until(
            lambda: name in {c["name"] for c in self.status()["clusters"]},
            within=10,
            what=f"Atlas knows {name}",
        )
        old = self.envoys.pop(name, None)
        if old is not None:
            old.stop()
        return self.start_cluster_envoy(name)

    @property
    def dns_53(self) -> str:
        """With real Prometheus: where Atlas's DNS also answers on port 53 (its resolv.conf)."""
        return self.ip(53)

    def _start_real_parts(self) -> None:
        from tests.e2e.real import RealAlertmanager, RealPrometheus

        self.alertmanager = RealAlertmanager(self.root / "am-obs", (self.ip(50), self.web_port))
        relay = self.ds_ports["alert_relay"]
        self.prometheus = RealPrometheus(
            self.root / "prom-east",
            (self.ip(31), self.web_port),
            external_url=f"http://{self.obs_ip}:{self.obs_ports['prometheus_ui']}/prom/east/",
            nameserver=self.dns_53,
            hosts={"alertmanager0.monitoring.svc.cluster.local": self.envoy_ips["east"]},
            config={
                "global": {"scrape_interval": "1m", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "thanos-sidecars",
                        "dns_sd_configs": [
                            {
                                "names": ["_thanos._tcp.sidecars.thanos.atlas."],
                                "type": "SRV",
                                "refresh_interval": "1s",
                            }
                        ],
                    }
                ],
                "alerting": {
                    "alertmanagers": [
                        {
                            "api_version": "v2",
                            "static_configs": [
                                {"targets": [f"alertmanager0.monitoring.svc.cluster.local:{relay}"]}
                            ],
                        }
                    ]
                },
            },
            rules={
                "groups": [
                    {
                        "name": "atlas-e2e",
                        "rules": [
                            {
                                "alert": "AtlasE2E",
                                "expr": "vector(1)",
                                "labels": {"cluster": "east", "severity": "none"},
                            }
                        ],
                    }
                ]
            },
        )

    def atlas_argv(self) -> list[str]:
        """The command that runs ``atlas`` (its ``serve`` arguments follow)."""
        return atlas_command()

    def start_atlas(self, **downstream_overrides: int) -> None:
        dns = [f"{self.atlas_ip}:{self.dns_port}"]
        if self.real_prometheus:
            dns.append(f"{self.dns_53}:53")
        argv = serve_directory_argv(
            self.root,
            self.settings(**downstream_overrides),
            ip=self.atlas_ip,
            ads_port=self.ads_port,
            http_port=self.http_port,
            dns_listen=dns,
            atlas=self.atlas_argv(),
        )
        self.atlas = Process("atlas", argv, self.root / "atlas.log")
        self.atlas.start()
        wait_until(lambda: self.status(), within=20, what="atlas status endpoint")

    def start_envoy(
        self,
        node: str,
        ip: str,
        ads: tuple[str, int],
        uri: str,
        cred_name: str,
        runtime: dict[str, Any] | None = None,
    ) -> Envoy:
        workdir = self.root / f"envoy-{node}"
        envoy = Envoy.for_node(
            self.pki,
            workdir,
            node,
            ip,
            ads,
            uri,
            credential=cred_name,
            api_type=self.api_type,
            runtime=runtime,
        )
        envoy.start()
        self.envoys[node] = envoy
        return envoy

    def stop(self) -> None:
        for envoy in self.envoys.values():
            envoy.stop()
        if self.atlas is not None:
            self.atlas.stop()
        for part in [*self.sidecars.values(), *self.webs.values()]:
            part.stop()
        for real in (self.prometheus, self.alertmanager):
            if real is not None:
                real.stop()

    # -- observation ----------------------------------------------------------------------
    @property
    def thanos_address(self) -> str:
        """The observability Envoy's StoreAPI listener (what the SRV records point at)."""
        return f"{self.obs_ip}:{self.obs_ports['thanos']}"

    def thanos_authority(self, target: str) -> str:
        """What Thanos Query sends for SRV target ``target`` (``east-0``): the name as resolved,
        fully qualified with its trailing dot, joined with the SRV port."""
        return f"{target}.sidecars.thanos.atlas.:{self.obs_ports['thanos']}"

    def status(self) -> dict[str, Any]:
        url = f"http://{self.atlas_ip}:{self.http_port}/status"
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.loads(response.read()))

    def metrics(self) -> str:
        url = f"http://{self.atlas_ip}:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def logs(self) -> str:
        parts = [f"--- atlas ---\n{self.atlas.tail() if self.atlas else ''}"]
        parts += [
            f"--- {p.name} ---\n{p.tail()}" for p in (self.prometheus, self.alertmanager) if p
        ]
        parts += [f"--- envoy {n} ---\n{e.tail()}" for n, e in self.envoys.items()]
        return "\n".join(parts)

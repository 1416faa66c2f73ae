"""Starting and stopping the demo's parts: Atlas, the Envoys, the sidecars, and Prometheus and
Alertmanager (Debian's real ones where installed, else a built-in stand-in, said so)."""

from __future__ import annotations

import shutil
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atlas.config import DEFAULT_ADS_PORT, ObservabilityPorts, PKISettings
from atlas.demo.launch import envoy_argv, find_envoy, serve_directory_argv, write_local_bootstrap
from atlas.demo.layout import ADMIN_PORT, DNS_PORT, HTTP_PORT, ClusterLayout, Layout
from atlas.demo.processes import ProcessGroup, wait_for
from atlas.demo.sidecar import DemoSidecar
from atlas.demo.stub import WebStandIn
from atlas.pki import OBSERVABILITY_URI, cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore

__all__ = ["Parts"]

Say = Callable[[str], None]


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


@dataclass
class Parts:
    layout: Layout
    root: Path
    group: ProcessGroup
    say: Say
    envoy: str = field(default_factory=find_envoy)
    prometheus: str | None = field(default_factory=lambda: shutil.which("prometheus"))
    alertmanager: str | None = field(
        default_factory=lambda: (
            shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        )
    )
    in_process: dict[str, Any] = field(default_factory=dict)
    """Sidecars and stand-ins, which run in this process."""

    @property
    def source(self) -> Path:
        return self.root / "clusters"

    @property
    def state(self) -> Path:
        return self.root / "state"

    # -- Atlas and the observability side -----------------------------------------------------
    def start_atlas(self) -> None:
        self.source.mkdir(parents=True, exist_ok=True)
        (self.source / "alertmanager.yaml").write_text(
            yaml.safe_dump(self.layout.alertmanager_manifest())
        )
        ip = self.layout.atlas
        argv = serve_directory_argv(
            self.root,
            self.layout.settings(),
            ip=ip,
            ads_port=DEFAULT_ADS_PORT,
            http_port=HTTP_PORT,
            dns_listen=[f"{ip}:{DNS_PORT}"],
            atlas=[sys.executable, "-m", "atlas.cli"],
        )
        self.group.start("atlas", argv)
        wait_for(
            lambda: _http_ok(f"http://{ip}:{HTTP_PORT}/healthz"), within=30, what="Atlas answers"
        )
        wait_for(lambda: (self.state / "pki" / "ca.crt").exists(), within=10, what="Atlas's CA")

    def start_observability(self) -> None:
        host, port = self.layout.alertmanager
        self._alertmanager("alertmanager-obs", host, port, external_url=f"http://{host}:{port}/")
        self._envoy(
            "envoy-obs",
            self.layout.settings()["network"]["observability_listen_address"],
            node="atlas",
            uri=OBSERVABILITY_URI,
            ads=(self.layout.atlas, DEFAULT_ADS_PORT),
        )

    # -- a downstream cluster ----------------------------------------------------------------
    def start_cluster(self, cluster: ClusterLayout) -> None:
        (self.source / f"{cluster.name}.yaml").write_text(yaml.safe_dump(cluster.manifest()))
        sidecar = DemoSidecar(*cluster.sidecar, {"cluster": cluster.name, "replica": "0"})
        self.in_process[f"sidecar-{cluster.name}"] = sidecar
        prom_url, am_url = self.layout.ui_urls(cluster)
        self._alertmanager(
            f"alertmanager-{cluster.name}", *cluster.alertmanager, external_url=am_url
        )
        self._prometheus(cluster, prom_url)
        self._envoy(
            f"envoy-{cluster.name}",
            cluster.envoy,
            node=cluster.name,
            uri=cluster_uri(cluster.name),
            ads=(self.layout.observability, ObservabilityPorts().ads),
        )

    def stop_cluster(self, cluster: ClusterLayout) -> None:
        (self.source / f"{cluster.name}.yaml").unlink(missing_ok=True)
        for name in (f"envoy-{cluster.name}", f"prometheus-{cluster.name}"):
            self.group.stop(name)
        self.group.stop(f"alertmanager-{cluster.name}")
        for key in (
            f"sidecar-{cluster.name}",
            f"alertmanager-{cluster.name}",
            f"prometheus-{cluster.name}",
        ):
            part = self.in_process.pop(key, None)
            if part is not None:
                part.stop()

    def stop_all(self) -> None:
        self.group.stop_all()
        for part in self.in_process.values():
            part.stop()
        self.in_process.clear()

    # -- the processes ------------------------------------------------------------------------
    def _envoy(self, name: str, ip: str, *, node: str, uri: str, ads: tuple[str, int]) -> None:
        bootstrap = write_local_bootstrap(
            CertificateManager(DirectoryStore(self.state)),
            self.root / name,
            node=node,
            uri=uri,
            ads=ads,
            admin=(ip, ADMIN_PORT),
            lifetime=PKISettings().bootstrap_lifetime,
        )
        self.group.start(name, envoy_argv(bootstrap))
        wait_for(
            lambda: _http_ok(f"http://{ip}:{ADMIN_PORT}/ready"), within=30, what=f"{name} ready"
        )

    def _prometheus(self, cluster: ClusterLayout, external_url: str) -> None:
        name = f"prometheus-{cluster.name}"
        host, port = cluster.prometheus
        if self.prometheus is None:
            self.in_process[name] = WebStandIn(host, port, f"Prometheus of {cluster.name}")
            return
        workdir = self.root / name
        workdir.mkdir(parents=True, exist_ok=True)
        config = self.layout.prometheus_config(cluster)
        (workdir / "rules.yml").write_text(yaml.safe_dump(self.layout.prometheus_rules(cluster)))
        config["rule_files"] = [str(workdir / "rules.yml")]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.group.start(
            name,
            [
                self.prometheus,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={host}:{port}",
                f"--web.external-url={external_url}",
                "--web.route-prefix=/",
                "--rules.alert.resend-delay=10s",
            ],
        )
        wait_for(lambda: _http_ok(f"http://{host}:{port}/-/ready"), within=30, what=f"{name} ready")

    def _alertmanager(self, name: str, host: str, port: int, *, external_url: str) -> None:
        if self.alertmanager is None:
            self.in_process[name] = WebStandIn(host, port, "Alertmanager")
            return
        workdir = self.root / name
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(self.layout.alertmanager_config()))
        self.group.start(
            name,
            [
                self.alertmanager,
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={host}:{port}",
                f"--web.external-url={external_url}",
                "--web.route-prefix=/",
                "--cluster.listen-address=",
            ],
        )
        wait_for(lambda: _http_ok(f"http://{host}:{port}/-/ready"), within=30, what=f"{name} ready")

"""Debian's real Prometheus and Alertmanager as parts of the test network.

Prometheus reads DNS servers from /etc/resolv.conf and names from /etc/hosts (no flag can
point it elsewhere), so it runs in a private mount namespace where those two files are the
test's own: its DNS service discovery asks Atlas's DNS on port 53 of a loopback address, as it
would ask CoreDNS in a cluster, and ``alertmanager0.monitoring.svc.cluster.local`` (the Host the
goatlas.io/atlas chart gave alerts) resolves to that cluster's Envoy. That takes root, as CI has.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas.demo.processes import Process

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def require_real_parts() -> None:
    if PROMETHEUS is None or ALERTMANAGER is None:
        pytest.fail(
            "Debian's prometheus and prometheus-alertmanager are required (tests/prepare.sh)"
        )
    if os.geteuid() != 0:
        pytest.skip("Prometheus's /etc/resolv.conf and /etc/hosts need a mount namespace (root)")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=3) as response:
        return json.loads(response.read())


class _WebPart(Process):
    """A Prometheus-family server: its address, URL and ``/-/ready``."""

    address: tuple[str, int]

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)


class RealPrometheus(_WebPart):
    """``prometheus`` serving its UI at ``/`` with links under ``external_url``."""

    def __init__(
        self,
        workdir: Path,
        address: tuple[str, int],
        *,
        external_url: str,
        config: dict[str, Any],
        rules: dict[str, Any] | None = None,
        nameserver: str | None = None,
        hosts: dict[str, str] | None = None,
    ) -> None:
        assert PROMETHEUS is not None
        workdir.mkdir(parents=True, exist_ok=True)
        self.address = address
        if rules is not None:
            (workdir / "rules.yml").write_text(yaml.safe_dump(rules))
            config = {**config, "rule_files": [str(workdir / "rules.yml")]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={address[0]}:{address[1]}",
            f"--web.external-url={external_url}",
            "--web.route-prefix=/",
            # Firing alerts are re-sent every minute by default; the first sends go out before
            # the Envoys have their configuration, so a test would wait that minute.
            "--rules.alert.resend-delay=2s",
        ]
        mounts = []
        if nameserver is not None:
            (workdir / "resolv.conf").write_text(f"nameserver {nameserver}\n")
            mounts.append((workdir / "resolv.conf", "/etc/resolv.conf"))
        if hosts is not None:
            lines = [f"{ip} {name}" for name, ip in hosts.items()]
            (workdir / "hosts").write_text("\n".join(["127.0.0.1 localhost", *lines]) + "\n")
            mounts.append((workdir / "hosts", "/etc/hosts"))
        if mounts:
            binds = " && ".join(f"mount --bind {src} {dst}" for src, dst in mounts)
            command = " ".join(f"'{a}'" for a in prometheus)
            argv = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                f"{binds} && exec {command}",
            ]
        else:
            argv = prometheus
        super().__init__("prometheus", argv, workdir / "prometheus.log")
        self.start_and_wait(self.ready, within=30, what="prometheus ready")

    def api(self, path: str) -> Any:
        return _get_json(f"{self.url}/api/v1/{path}")["data"]


class RealAlertmanager(_WebPart):
    """``alertmanager`` on one address, clustering off (no gossip port)."""

    def __init__(self, workdir: Path, address: tuple[str, int]) -> None:
        assert ALERTMANAGER is not None
        workdir.mkdir(parents=True, exist_ok=True)
        self.address = address
        config = {
            "route": {"receiver": "null", "group_wait": "1s", "group_interval": "1s"},
            "receivers": [{"name": "null"}],
        }
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        argv = [
            ALERTMANAGER,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={address[0]}:{address[1]}",
            "--cluster.listen-address=",
        ]
        super().__init__("alertmanager", argv, workdir / "alertmanager.log")
        self.start_and_wait(self.ready, within=30, what="alertmanager ready")

    def alerts(self) -> list[dict[str, Any]]:
        return list(_get_json(f"{self.url}/api/v2/alerts"))

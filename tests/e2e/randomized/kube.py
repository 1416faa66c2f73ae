"""The randomized run in Kubernetes mode: two Atlas replicas watching a real kube-apiserver
(tests/kube), Envoys installed only from the values Secrets the leader writes and spread over
both replicas by a stand-in for the Atlas Service's VIP.

Its actions are the directory run's that Kubernetes allows (a second Service named like a
cluster cannot exist, so there is no duplicate), written through the API, plus the faults
of a deployment: the leader killed (and started again), the API server restarted, a CA
rotation asked for with the annotation. Its extra invariant: while a cluster exists, its
values Secret is never deleted (its uid never changes), whatever the outage.

What stands in: the observability Alertmanager's Service has a ClusterIP of the API server's
range (10.96.0.0/16), which nothing on loopback reaches, so alerts are not sent here; the
directory run checks them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import yaml

from atlas.demo.envoy import Envoy
from atlas.demo.ports import free_port
from atlas.demo.processes import Process
from atlas.kube import Kube, KubeError
from tests.e2e.randomized.checks import Touch, Violation
from tests.e2e.randomized.model import CLUSTERS, Cluster, Model, Wanted
from tests.e2e.randomized.network import RandomNetwork
from tests.e2e.randomized.run import WEIGHTS, RandomRun
from tests.fakes.vip import ServiceVIP
from tests.kube.cluster import KubeCluster, replica_status
from tests.kube.objects import secret, values_of
from tests.polling import wait_until

NAMESPACE = "monitoring"
REPLICAS = ("a", "b")


class KubeNetwork(RandomNetwork):
    def __init__(self, root: Path, *, api_type: str, kube: KubeCluster, admin: Kube) -> None:
        super().__init__(root, api_type=api_type)
        self.kube, self.admin = kube, admin
        self.replica_ip = {"a": self.ip(5), "b": self.ip(6)}
        self.replica_ports = {
            r: {k: free_port(ip) for k in ("ads", "http", "dns")}
            for r, ip in self.replica_ip.items()
        }
        self.replicas: dict[str, Process] = {}
        self.vip_address = (self.ip(7), free_port(self.ip(7)))
        self.vip: ServiceVIP | None = None
        # The prober and the checks ask replica a (its DNS, its /status) unless it is down.
        self.atlas_ip = self.replica_ip["a"]
        self.http_port = self.replica_ports["a"]["http"]
        self.dns_port = self.replica_ports["a"]["dns"]

    def cluster_manifest(self, name: str, wanted: Wanted, *, broken: bool = False) -> str:
        # The API server refuses loopback externalIPs (the address goes in the annotation),
        # and wants a port.
        obj = yaml.safe_load(super().cluster_manifest(name, _annotated(wanted), broken=broken))
        obj["spec"]["ports"] = [{"name": "thanos", "port": 10901}]
        return str(yaml.safe_dump(obj))

    def settings(self, **downstream_overrides: int) -> dict[str, Any]:
        settings = super().settings(**downstream_overrides)
        settings["network"]["control_plane_address"] = self.vip_address[0]
        settings["network"]["control_plane_port"] = self.vip_address[1]
        settings["envoy"] = {"admin_address": "127.0.0.1", "admin_port": 0, "cert_dir": "certs"}
        settings["lease"] = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.3}
        settings["watch"] = {"backoff_initial": 0.1, "backoff_max": 0.5, "reconcile_interval": 0.5}
        settings.pop("poll_interval", None)
        return settings

    def start(self) -> None:
        from atlas.demo.stub import WebStandIn
        from tests.e2e.network import GoSidecar
        from tests.e2e.randomized.model import MAX_REPLICAS
        from tests.e2e.randomized.network import INDEX

        for c in CLUSTERS:
            for i in range(MAX_REPLICAS):
                name = f"{c}-{i}"
                self.sidecars[name] = GoSidecar(
                    name,
                    self.ip(20 + INDEX[c], i),
                    self.sidecar_port,
                    {"cluster": c, "replica": str(i)},
                    self.root / f"sidecar-{name}.log",
                )
            for kind, last in (("prom", 30), ("am", 40)):
                stub = f"{kind}-{c}"
                self.webs[stub] = WebStandIn(self.ip(last + INDEX[c]), self.web_port, stub)
        backends = [(self.replica_ip[r], self.replica_ports[r]["ads"]) for r in REPLICAS]
        self.vip = ServiceVIP(*self.vip_address, backends=backends)
        for replica, user in (("a", "limited"), ("b", "limited2")):
            self.start_replica(replica, user)
        values = wait_until(
            lambda: self.values("atlas-envoy-values"), within=20, what="atlas-envoy-values"
        )
        self.envoys["atlas"] = Envoy.from_values("atlas", self.root / "envoy-atlas", values)

    def start_replica(self, name: str, user: str | None = None) -> None:
        self.replicas[name] = self.kube.start_replica(
            name,
            user=user or ("limited" if name == "a" else "limited2"),
            settings=self.settings(),
            ip=self.replica_ip[name],
            ports=self.replica_ports[name],
            service=self.vip_address,
            root=self.root,
        )

    def replica_status(self, name: str) -> dict[str, Any]:
        return replica_status(self.replica_ip[name], self.replica_ports[name]["http"])

    def values(self, name: str) -> dict[str, Any] | None:
        return values_of(self.admin, name)

    def values_uid(self, name: str) -> str | None:
        obj = secret(self.admin, name)
        return None if obj is None else str(obj["metadata"]["uid"])

    def restart_observability_envoy(self, runtime: dict[str, Any] | None = None) -> Envoy:
        """Stopped and started again with the bootstrap it was installed with."""
        envoy = self.envoys["atlas"]
        envoy.stop()
        envoy.start()
        return envoy

    def stop(self) -> None:
        super().stop()
        for replica in self.replicas.values():
            replica.stop()
        if self.vip is not None:
            self.vip.close()

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.tail(60)}" for p in self.replicas.values()]
        parts += [f"--- envoy {n} ---\n{e.tail(20)}" for n, e in self.envoys.items()]
        return "\n".join(parts)


def _weights(*kinds: str) -> dict[str, int]:
    return {kind: WEIGHTS[kind] for kind in kinds}


def _annotated(wanted: Wanted) -> Wanted:
    from dataclasses import replace

    return replace(wanted, by_annotation=True)


class KubeRun(RandomRun):
    """``RandomRun`` with its source, its faults and its status over two replicas."""

    net: KubeNetwork
    ACTIONS: ClassVar[dict[str, int]] = (
        _weights("scale", "add", "remove", "move", "regroup", "break", "fix", "burst", "rotate_ca")
        | {"kill_leader": 3, "restart_api": 3}
        | _weights("restart_envoy", "restart_observability")
    )
    """The directory run's weights, less what has no meaning on the API server (duplicate
    files, dropping the previous CA by hand, killing the only Atlas), plus its own faults."""

    def __init__(
        self, root: Path, *, seed: int, api_type: str, kube: KubeCluster, admin: Kube
    ) -> None:
        super().__init__(root, seed=seed, api_type=api_type)
        self.net = KubeNetwork(root, api_type=api_type, kube=kube, admin=admin)
        self.admin = admin
        self.uids: dict[str, str] = {}
        """Per present cluster, the uid of its values Secret: never deleted while it exists."""
        self.installed: dict[str, str] = {}
        """Per cluster, the bootstrap certificate its Envoy was installed with."""
        self.alerts_enabled = False

    def _draw(self) -> str:
        kinds = [k for k in self.ACTIONS if self._applies(k)]
        return self.rng.choices(kinds, [self.ACTIONS[k] for k in kinds])[0]

    # -- the source: Services through the API ------------------------------------------------
    def _write(self, name: str, cluster: Cluster) -> None:
        body = yaml.safe_load(
            self.net.cluster_manifest(name, cluster.served, broken=cluster.broken)
        )
        core = self.admin.core
        try:
            current = self.admin.call("get", core.read_namespaced_service, name, NAMESPACE)
        except KubeError as err:
            if err.status != 404:
                raise
            self.admin.call("create", core.create_namespaced_service, NAMESPACE, body)
            return
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        for key in ("clusterIP", "clusterIPs"):
            if key in current.get("spec", {}):
                body["spec"][key] = current["spec"][key]
        self.admin.call("replace", core.replace_namespaced_service, name, NAMESPACE, body)

    def _remove(self) -> tuple[Model, Touch, Callable[[], None]]:
        name = self.rng.choice(sorted(self.model.clusters))
        self.admin.call("delete", self.admin.core.delete_namespaced_service, name, NAMESPACE)
        self.revoked.add(name)
        self.uids.pop(name, None)
        touch = Touch(targets=self._targets(name), alerts=frozenset({name}), dns=True)
        return self.model.with_cluster(name, None), touch, lambda: None

    def _install(self, name: str) -> None:
        """Its Envoy from the values the leader writes (a new bootstrap after a re-add)."""
        old = self.net.envoys.pop(name, None)
        if old is not None:
            old.stop()
        before = self.installed.get(name)

        def fresh() -> dict[str, Any] | None:
            values = self.net.values(f"{name}-envoy-values")
            if values and values["certificates"]["tls.crt"] != before:
                return values
            return None

        values = wait_until(fresh, within=15, what=f"{name}'s values")
        self.installed[name] = values["certificates"]["tls.crt"]
        workdir = self.root / f"envoy-{name}-{len(self.summary.steps)}"
        self.net.envoys[name] = Envoy.from_values(name, workdir, values)

    def _add(
        self, name: str, wanted: Wanted | None = None
    ) -> tuple[Model, Touch, Callable[[], None]]:
        if not wanted:
            wanted = Wanted(
                replicas=self.rng.randint(1, 3),
                alternate_address=self.rng.random() < 0.3,
                group=self.rng.choice((None, "a", "b")),
            )
        cluster = Cluster(wanted)
        model = self.model.with_cluster(name, cluster)
        touch = Touch(targets=self._targets(name), alerts=frozenset({name}), dns=True)
        self._write(name, cluster)

        def finish() -> None:
            self._install(name)
            self.revoked.discard(name)
            self._wait_connected([name])

        return model, touch, finish

    # -- faults of a deployment --------------------------------------------------------------
    def _leader(self) -> str | None:
        for name in REPLICAS:
            try:
                if self.net.replica_status(name)["leader"]:
                    return name
            except OSError:
                continue
        return None

    def _kill_leader(self) -> tuple[Model, Touch, Callable[[], None]]:
        leader = self._leader() or "a"

        def finish() -> None:
            self.net.replicas[leader].kill(signal.SIGKILL)
            time.sleep(self.rng.uniform(0, 1))
            self.net.start_replica(leader)
            wait_until(lambda: self._leader() is not None, within=15, what="a leader")
            self._wait_connected(["atlas", *sorted(set(self.model.clusters) - self.revoked)])

        # Its DNS is the prober's when it is replica a.
        return self.model, Touch(dns=True, dns_down=leader == "a"), finish

    def _restart_api(self) -> tuple[Model, Touch, Callable[[], None]]:
        """The replicas keep serving from their caches; the leader writes nothing until both
        its lists are fresh again."""

        def finish() -> None:
            kube = self.net.kube
            kube.stop_apiserver()
            time.sleep(self.rng.uniform(0.2, 3))
            kube.start_apiserver()

        return self.model, Touch(), finish

    def _rotate_ca(self) -> tuple[Model, Touch, Callable[[], None]]:
        ca = self.admin.call("get", self.admin.core.read_namespaced_secret, "atlas-ca", NAMESPACE)
        ca["metadata"].setdefault("annotations", {})["goatlas.io/ca-rotate"] = str(time.time())
        self.admin.call(
            "replace", self.admin.core.replace_namespaced_secret, "atlas-ca", NAMESPACE, ca
        )
        self.rotated = True
        return self.model, Touch(), lambda: None

    # -- what both replicas say --------------------------------------------------------------
    def _status(self) -> dict[str, Any]:
        """Replica a's, with every node's connection taken from the replica it is on."""
        documents = []
        for name in REPLICAS:
            try:
                documents.append(self.net.replica_status(name))
            except OSError:
                continue
        if not documents:
            return {}
        merged = dict(documents[0])
        nodes: dict[str, dict[str, Any]] = {}
        for doc in documents:
            for node in doc["nodes"]:
                if node["connected"] or node["node"] not in nodes:
                    nodes[node["node"]] = node
        merged["nodes"] = list(nodes.values())
        merged["ready"] = all(d["ready"] for d in documents)
        merged["problems"] = [p for d in documents for p in d["problems"]]
        return merged

    def _disagreements(self, status: dict[str, Any]) -> list[str]:
        problems = super()._disagreements(status)
        for name in sorted(self.model.clusters):
            uid = self.net.values_uid(f"{name}-envoy-values")
            known = self.uids.setdefault(name, uid) if uid else None
            if uid is None:
                problems.append(f"{name}-envoy-values missing")
            elif known != uid:
                raise Violation(f"{name}-envoy-values was deleted while {name} existed")
        return problems

    def _relay(self, cluster: str) -> tuple[str, int] | None:
        return None  # see the module docstring

    def _cli_agrees(self) -> None:
        """``atlas status`` with both replicas' URLs."""
        import json

        from tests.conftest import run_atlas

        net = self.net
        urls: list[str] = []
        for name in REPLICAS:
            ip, ports = net.replica_ip[name], net.replica_ports[name]
            urls += ["--url", f"http://{ip}:{ports['http']}/status"]
        result = run_atlas(["status", *urls, "-o", "json", "--no-probe"])
        report = json.loads(result.stdout)
        rows = {r["name"]: r for r in report["clusters"]}
        if set(rows) != {"(observability)", *self.model.clusters}:
            raise Violation(f"atlas status rows {sorted(rows)}")
        for name in ["(observability)", *sorted(set(self.model.clusters) - self.revoked)]:
            if not (rows[name]["connected"] and rows[name]["in_sync"]):
                raise Violation(f"atlas status: {name} {rows[name]}")

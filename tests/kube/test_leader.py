"""The leader's writes against a real API server: Events for invalid Services, Helm values
Secrets, CA rotation through the annotation, and the Lease handed over when the leader dies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from atlas.config import LeaseSettings, Settings, WatchSettings
from atlas.demo.ports import free_port
from atlas.demo.processes import stop_child
from atlas.kube import Kube
from atlas.pki import uri_of
from atlas.serve.daemon import Atlas
from atlas.serve.options import ServeOptions
from tests.kube.cluster import KubeCluster
from tests.kube.conftest import NAMESPACE, service
from tests.kube.objects import data, secret, written
from tests.polling import until

pytestmark = pytest.mark.e2e

LEASE = LeaseSettings(lease_duration=3.0, renew_deadline=2.0, retry_period=0.3)
WATCH = WatchSettings(backoff_initial=0.1, backoff_max=0.5, reconcile_interval=0.5)
TIMINGS = {
    "lease": {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.3},
    "watch": {"backoff_initial": 0.1, "backoff_max": 0.5, "reconcile_interval": 0.5},
}
"""LEASE and WATCH as a replica process's settings file."""


@contextlib.asynccontextmanager
async def running_leader(kube_cluster: KubeCluster) -> AsyncIterator[Atlas]:
    """An in-process Atlas against the API server (as user ``limited``), once it leads."""
    atlas = Atlas(
        ServeOptions(
            source="kubernetes",
            state_dir="",
            kubeconfig=str(kube_cluster.kubeconfig),
            kube_context="limited",
            identity="replica-a",
            ads_listen="127.0.0.1:0",
            http_listen="",
            dns_listen=("127.0.0.1:0",),
            settings=Settings(lease=LEASE, watch=WATCH),
        )
    )
    await atlas.start()
    try:
        await until(atlas.may_write, within=10, what="leadership", blocking=True)
        yield atlas
    finally:
        await atlas.stop()


@pytest.fixture
async def leader(kube_cluster: KubeCluster, admin: Kube) -> AsyncIterator[Atlas]:
    async with running_leader(kube_cluster) as atlas:
        yield atlas


async def test_invalid_services_produce_events_and_others_keep_working(
    admin: Kube, leader: Atlas
) -> None:
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    bad = service("west", replicas="two")
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, bad)

    def warning() -> dict[str, Any] | None:
        events = admin.call("list", admin.core.list_namespaced_event, NAMESPACE)["items"]
        return next((e for e in events if e["involvedObject"]["name"] == "west"), None)

    event = await until(warning, within=10, what="an Event on the invalid Service", blocking=True)
    assert event["type"] == "Warning" and event["reason"] == "InvalidClusterService"
    assert event["involvedObject"]["kind"] == "Service"
    assert event["message"].startswith("metadata.labels[goatlas.io/replicas]: 'two'")
    assert leader.state is not None and leader.state.topology.cluster_names == ("east",)


async def test_values_secrets_follow_the_clusters(admin: Kube, leader: Atlas) -> None:
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("west"))
    east = await written(admin, "east-envoy-values")
    await written(admin, "west-envoy-values")
    obs = await written(admin, "atlas-envoy-values")
    values = yaml.safe_load(data(east, "values.yaml"))
    assert values["nodeId"] == "east" and values["bootstrap"]["node"]["id"] == "east"
    cert = x509.load_pem_x509_certificate(values["certificates"]["tls.crt"].encode())
    assert uri_of(cert) == "spiffe://atlas/cluster/east"
    assert yaml.safe_load(data(obs, "values.yaml"))["nodeId"] == "atlas"
    assert values["alertmanagerReplicas"] == 0, "no observability Alertmanager yet"
    for i in (0, 1):  # kube-prometheus-stack's per-replica Services: the relay offers both
        am = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": f"alertmanager-{i}",
                "namespace": NAMESPACE,
                "labels": {"app": "kube-prometheus-stack-alertmanager"},
            },
            "spec": {
                "selector": {"statefulset.kubernetes.io/pod-name": f"alertmanager-main-{i}"},
                "ports": [{"name": "http-web", "port": 9093}],
            },
        }
        admin.call("create", admin.core.create_namespaced_service, NAMESPACE, am)

    def relays_both() -> bool:
        current = secret(admin, "east-envoy-values")
        if not current:
            return False
        return bool(yaml.safe_load(data(current, "values.yaml")).get("alertmanagerReplicas") == 2)

    await until(
        relays_both, within=10, what="east's values relaying to both Alertmanagers", blocking=True
    )
    assert "alertmanagerReplicas" not in yaml.safe_load(
        data(secret(admin, "atlas-envoy-values") or {}, "values.yaml")
    ), "the observability Envoy relays nothing"
    admin.call("delete", admin.core.delete_namespaced_service, "west", NAMESPACE)
    await until(
        lambda: secret(admin, "west-envoy-values") is None,
        within=10,
        what="stale values removed",
        blocking=True,
    )
    assert secret(admin, "east-envoy-values") is not None


async def test_two_instances_share_a_namespace(
    kube_cluster: KubeCluster, admin: Kube, leader: Atlas, tmp_path: Path
) -> None:
    """Two installations in one namespace (the chart's ``instance``, two releases): each leads
    through its own Lease, keeps its own CA and values, and removing a cluster's stale values
    never removes the other's."""
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("west"))
    staging = kube_cluster.start_replica(
        "staging",
        user="limited2",
        settings={"instance": "staging", **TIMINGS},
        ip="127.0.0.1",
        ports={"ads": 0, "http": free_port("127.0.0.1")},
        service=("atlas-ads.monitoring.svc", 18000),
        root=tmp_path,
    )
    try:
        for name in ("east-envoy-values", "west-envoy-values", "atlas-envoy-bootstrap"):
            await written(admin, name)
        for name in (
            "staging-east-envoy-values",
            "staging-west-envoy-values",
            "staging-envoy-bootstrap",
        ):
            await written(admin, name)
        leases = admin.call("list", admin.coordination.list_namespaced_lease, NAMESPACE)
        holders = {
            lease["metadata"]["name"]: lease["spec"]["holderIdentity"] for lease in leases["items"]
        }
        assert holders == {"atlas": "replica-a", "staging": "replica-staging"}
        cas = {data(await written(admin, f"{i}-ca"), "ca.crt") for i in ("atlas", "staging")}
        assert len(cas) == 2, "each instance has its own CA"
        east = {
            yaml.safe_load(data(await written(admin, n), "values.yaml"))["certificates"]["ca.crt"]
            for n in ("east-envoy-values", "staging-east-envoy-values")
        }
        assert {c.encode() for c in east} == cas

        kept = (
            "east-envoy-values",
            "staging-east-envoy-values",
            "atlas-bootstrap-east",
            "staging-bootstrap-east",
        )
        uids = {name: _uid(admin, name) for name in kept}
        admin.call("delete", admin.core.delete_namespaced_service, "west", NAMESPACE)
        for name in ("west-envoy-values", "staging-west-envoy-values"):
            await until(
                partial(_gone, admin, name),
                within=10,
                what=f"stale {name} removed",
                blocking=True,
            )
        # Neither removed (nor replaced) anything of the other's.
        assert {name: _uid(admin, name) for name in kept} == uids
    finally:
        staging.stop()


def _gone(admin: Kube, name: str) -> bool:
    return secret(admin, name) is None


def _uid(admin: Kube, name: str) -> str:
    found = secret(admin, name)
    assert found is not None, f"Secret {name} is missing"
    return str(found["metadata"]["uid"])


async def test_ca_rotation_through_the_annotation(admin: Kube, leader: Atlas) -> None:
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    before = await written(admin, "atlas-ca")
    node = await written(admin, "atlas-node-east")
    old_ca = data(before, "ca.crt")
    body = dict(before)
    body["metadata"].setdefault("annotations", {})["goatlas.io/ca-rotate"] = "now"
    admin.call("replace", admin.core.replace_namespaced_secret, "atlas-ca", NAMESPACE, body)

    def rotated() -> dict[str, Any] | None:
        obj = secret(admin, "atlas-ca")
        return obj if obj and data(obj, "ca.crt") != old_ca else None

    after = await until(rotated, within=10, what="CA rotated", blocking=True)
    assert data(after, "ca-previous.pem") == old_ca, "the old CA stays trusted"
    assert "goatlas.io/ca-rotate" not in (after["metadata"].get("annotations") or {})
    new_ca = x509.load_pem_x509_certificate(data(after, "ca.crt"))

    def reissued() -> bool:
        obj = secret(admin, "atlas-node-east")
        if obj is None or data(obj, "tls.crt") == data(node, "tls.crt"):
            return False
        x509.load_pem_x509_certificate(data(obj, "tls.crt")).verify_directly_issued_by(new_ca)
        return True

    await until(reissued, within=10, what="east's leaf re-issued by the new CA", blocking=True)

    # Asked again before the first rotation is finished: declined, with an Event saying why
    # (the bridge reaches one CA back; a second rotation cuts off Envoys still on the first).
    again = secret(admin, "atlas-ca") or {}
    again["metadata"].setdefault("annotations", {})["goatlas.io/ca-rotate"] = "now"
    admin.call("replace", admin.core.replace_namespaced_secret, "atlas-ca", NAMESPACE, again)

    def declined() -> dict[str, Any] | None:
        events = admin.call("list", admin.core.list_namespaced_event, NAMESPACE)["items"]
        return next((e for e in events if e["reason"] == "CARotationDeclined"), None)

    event = await until(declined, within=10, what="the declined rotation's Event", blocking=True)
    assert event["involvedObject"] == {
        **event["involvedObject"],
        "kind": "Secret",
        "name": "atlas-ca",
    }
    assert "the previous CA is still trusted" in event["message"]
    current = secret(admin, "atlas-ca") or {}
    assert data(current, "ca.crt") == data(after, "ca.crt"), "not rotated"
    assert "goatlas.io/ca-rotate" not in (current["metadata"].get("annotations") or {})


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
        return dict(json.loads(r.read()))


def _writes(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    result: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("atlas_kube_writes_total{"):
            labels, value = line.rsplit(" ", 1)
            kind = labels.split('kind="')[1].split('"')[0]
            result[kind] = result.get(kind, 0) + float(value)
    return result


async def test_two_replicas_only_the_leader_writes_and_the_lease_moves(
    admin: Kube, kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    config = tmp_path / "atlas.yaml"
    config.write_text(yaml.safe_dump(TIMINGS))
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, user in (("replica-a", "limited"), ("replica-b", "limited2")):
            port = free_port("127.0.0.1")
            log = (tmp_path / f"{name}.log").open("wb")
            procs[name] = (
                subprocess.Popen(
                    kube_cluster.replica_argv(
                        user=user,
                        identity=name,
                        config=config,
                        ads_listen="127.0.0.1:0",
                        http_listen=f"127.0.0.1:{port}",
                        dns_listen="127.0.0.1:0",
                    ),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                port,
            )
            log.close()

        def leaders() -> list[str]:
            found = []
            for name, (_, port) in procs.items():
                try:
                    if _status(port)["leader"]:
                        found.append(name)
                except OSError:
                    pass
            return found

        first = (
            await until(
                lambda: leaders() if len(leaders()) == 1 else None,
                within=20,
                what="one leader",
                blocking=True,
            )
        )[0]
        follower = next(n for n in procs if n != first)
        await written(admin, "east-envoy-values", within=15)
        await asyncio.sleep(1.5)
        assert leaders() == [first], "exactly one replica leads"
        lead_writes, follow_writes = _writes(procs[first][1]), _writes(procs[follower][1])
        assert lead_writes.get("Secret", 0) > 0
        assert follow_writes.get("Secret", 0) == 0 and follow_writes.get("Event", 0) == 0, (
            f"the follower wrote: {follow_writes}"
        )
        lease = admin.call("get", admin.coordination.read_namespaced_lease, "atlas", NAMESPACE)
        assert lease["spec"]["holderIdentity"] == first

        killed_at = time.monotonic()
        procs[first][0].send_signal(signal.SIGKILL)
        procs[first][0].wait(10)
        await until(
            lambda: leaders() == [follower],
            within=3.0 + 2.0,
            what="the Lease handed over",
            blocking=True,
        )
        took = time.monotonic() - killed_at
        lease = admin.call("get", admin.coordination.read_namespaced_lease, "atlas", NAMESPACE)
        assert lease["spec"]["holderIdentity"] == follower
        admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("west"))
        await written(admin, "west-envoy-values")
        assert _writes(procs[follower][1]).get("Secret", 0) > 0
        print(f"lease handed over {took:.1f}s after SIGKILL (lease duration 3 s)")
    finally:
        for proc, _ in procs.values():
            stop_child(proc)


async def test_a_leader_that_cannot_renew_stops_writing_at_once(
    kube_cluster: KubeCluster, admin: Kube
) -> None:
    import threading

    from atlas.kube import connect
    from atlas.serve.leader import LeaderElector

    kube = connect(kubeconfig=str(kube_cluster.kubeconfig), context="limited")
    elector = LeaderElector(kube, NAMESPACE, "lonely", LEASE)
    thread = threading.Thread(target=elector.run, daemon=True)
    thread.start()
    try:
        await until(elector.is_leader, within=10, what="leadership", blocking=True)
        kube_cluster.stop_apiserver()
        cut_off = time.monotonic()
        try:
            await until(
                lambda: not elector.is_leader(),
                within=LEASE.renew_deadline + 1,
                what="stepping down",
                blocking=True,
            )
            stepped_down = time.monotonic() - cut_off
            assert stepped_down <= LEASE.renew_deadline + 0.5
            # It stepped down before anyone else may take the Lease (lease_duration).
            assert stepped_down < LEASE.lease_duration
        finally:
            await asyncio.to_thread(kube_cluster.start_apiserver)
    finally:
        elector.stop()
        thread.join(10)


async def test_injected_failures_in_leader_and_reconcile_recover(
    admin: Kube, kube_cluster: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lease thread and the leader's reconcile loop are supervised too: an exception in
    either is logged, counted, and the task runs again."""
    from prometheus_client import REGISTRY

    from atlas.serve.leader import LeaderElector
    from atlas.serve.reconcile import Reconciler

    def fail_once(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        failed: list[bool] = []

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not failed:
                failed.append(True)
                raise RuntimeError(f"injected into {name}")
            return real(*args, **kwargs)

        return wrapper

    def failures(task: str) -> float:
        return REGISTRY.get_sample_value("atlas_task_failures_total", {"task": task}) or 0.0

    before = {t: failures(t) for t in ("leader", "reconcile")}
    monkeypatch.setattr(LeaderElector, "_try", fail_once("leader", LeaderElector._try))
    monkeypatch.setattr(Reconciler, "values", fail_once("reconcile", Reconciler.values))
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    async with running_leader(kube_cluster) as atlas:
        await written(admin, "east-envoy-values", within=15)
        await until(
            lambda: not atlas.supervisor.problems(),
            within=10,
            what="every task running",
            blocking=True,
        )
    assert failures("leader") == before["leader"] + 1
    assert failures("reconcile") == before["reconcile"] + 1

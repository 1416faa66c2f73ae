"""A real kube-apiserver for the Kubernetes tests: built once (cached), started per session.

Atlas runs in these tests as the user ``limited`` (and ``limited2`` for a second replica),
bound to exactly the rules in charts/atlas/files/rbac-rules.yaml.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas.kube import Kube, KubeError, connect
from atlas.model import DEFAULT_THANOS
from tests.fakes.objects import service_object
from tests.kube.cluster import KubeCluster, binary

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "monitoring"


def _free_ports(count: int) -> list[int]:
    """``count`` consecutive free ports (etcd needs its peer port right after the client's)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        ports = list(range(base, base + count))
        if ports[-1] > 65000:
            continue
        try:
            for p in ports:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", p))
        except OSError:
            continue
        return ports
    raise RuntimeError("no free ports")


def _grant(admin: Kube) -> None:
    rules = yaml.safe_load((ROOT / "charts/atlas/files/rbac-rules.yaml").read_text())
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "atlas", "namespace": NAMESPACE},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "atlas", "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "atlas"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}
            for u in ("limited", "limited2")
        ],
    }
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(admin.api)
    admin.call("create Role", rbac.create_namespaced_role, NAMESPACE, role)
    admin.call("create RoleBinding", rbac.create_namespaced_role_binding, NAMESPACE, binding)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    apiserver = binary()
    etcd_port, _, api_port = _free_ports(3)
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"), apiserver, etcd_port, api_port)
    try:
        cluster.start()
        admin = connect(kubeconfig=str(cluster.kubeconfig), context="admin")
        admin.call(
            "create Namespace",
            admin.core.create_namespace,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        )
        _grant(admin)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def admin(kube_cluster: KubeCluster) -> Iterator[Kube]:
    kube = connect(kubeconfig=str(kube_cluster.kubeconfig), context="admin")
    yield kube
    # Leave the namespace as the next test expects it: no Services, no Atlas Secrets, no Lease.
    lease = kube.coordination
    for kind, list_fn, delete_fn in (
        ("Service", kube.core.list_namespaced_service, kube.core.delete_namespaced_service),
        ("Secret", kube.core.list_namespaced_secret, kube.core.delete_namespaced_secret),
        ("Lease", lease.list_namespaced_lease, lease.delete_namespaced_lease),
    ):
        for item in kube.call(f"list {kind}s", list_fn, NAMESPACE).get("items", []):
            name = item["metadata"]["name"]
            if kind == "Secret" and item.get("type") == "kubernetes.io/service-account-token":
                continue
            with contextlib.suppress(KubeError):
                kube.call(f"delete {kind} {name}", delete_fn, name, NAMESPACE)


@pytest.fixture
def limited(kube_cluster: KubeCluster) -> Kube:
    return connect(kubeconfig=str(kube_cluster.kubeconfig), context="limited")


def cluster_service(
    name: str, envoy: str, sidecar: str, port: int, **annotations: str
) -> dict[str, Any]:
    """A cluster's Service as an operator writes it for Envoys on loopback: the API server
    refuses loopback externalIPs, so the envoy address goes in the annotation (any IP)."""
    ann = {
        "goatlas.io/envoy-address": envoy,
        "goatlas.io/thanos-service": sidecar,
        "goatlas.io/thanos-service-port": str(port),
        **annotations,
    }
    labels = {"goatlas.io/cluster": "true"}
    spec = {"ports": [{"name": "thanos", "port": DEFAULT_THANOS.port}]}
    return service_object(name, namespace=NAMESPACE, labels=labels, annotations=ann, spec=spec)


def service(name: str, *, replicas: str = "1", ip: str = "192.0.2.10") -> dict[str, Any]:
    labels = {"goatlas.io/cluster": "true", "goatlas.io/replicas": replicas}
    spec = {"ports": [{"name": "thanos", "port": DEFAULT_THANOS.port}], "externalIPs": [ip]}
    return service_object(name, namespace=NAMESPACE, labels=labels, spec=spec)

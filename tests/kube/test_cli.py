"""``atlas cluster add|values`` and ``atlas ca rotate`` against a real API server."""

from __future__ import annotations

import pytest
import yaml

from atlas.kube import Kube, KubeError
from atlas.pki import CAState, create_ca
from atlas.pki_kube import KubeSecretStore
from tests.conftest import run_atlas
from tests.kube.cluster import KubeCluster
from tests.kube.conftest import NAMESPACE

pytestmark = pytest.mark.e2e


def kube_args(cluster: KubeCluster) -> list[str]:
    return [
        "--source",
        "kubernetes",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--kube-context",
        "admin",
    ]


def make_ca(admin: Kube) -> None:
    """The CA Secret as the Atlas leader writes it when it first starts."""
    state = CAState(create_ca())
    store = KubeSecretStore(admin, NAMESPACE)
    store.save_ca(state)


def test_cluster_add_and_values_against_the_api(kube_cluster: KubeCluster, admin: Kube) -> None:
    args = kube_args(kube_cluster)
    added = run_atlas(
        ["cluster", "add", "east", "--external-ip", "192.0.2.10", "--replicas", "2", *args]
    )
    assert added.returncode == 0, added.stderr
    svc = admin.call("get", admin.core.read_namespaced_service, "east", NAMESPACE)
    assert svc["metadata"]["labels"]["goatlas.io/replicas"] == "2"
    assert svc["spec"]["externalIPs"] == ["192.0.2.10"]

    again = run_atlas(["cluster", "add", "east", "--external-ip", "192.0.2.11", *args])
    assert again.returncode == 2 and "--overwrite" in again.stderr
    over = run_atlas(
        ["cluster", "add", "east", "--external-ip", "192.0.2.11", "--overwrite", *args]
    )
    assert over.returncode == 0, over.stderr
    svc = admin.call("get", admin.core.read_namespaced_service, "east", NAMESPACE)
    assert svc["spec"]["externalIPs"] == ["192.0.2.11"]

    values_args = ["cluster", "values", "east", "--observability-address", "obs.example.net"]
    no_ca = run_atlas([*values_args, *args])
    assert no_ca.returncode == 2
    assert "no CA in Secret monitoring/atlas-ca: the Atlas leader creates it" in no_ca.stderr
    with pytest.raises(KubeError):
        admin.call("get", admin.core.read_namespaced_secret, "atlas-ca", NAMESPACE)
    make_ca(admin)
    values = run_atlas([*values_args, *args])
    assert values.returncode == 0, values.stderr
    doc = yaml.safe_load(values.stdout)
    assert doc["nodeId"] == "east"
    stored = admin.call("get", admin.core.read_namespaced_secret, "atlas-bootstrap-east", NAMESPACE)
    assert stored["type"] == "kubernetes.io/tls"
    missing = run_atlas(["cluster", "values", "nowhere", "--observability-address", "x", *args])
    assert missing.returncode == 2 and "not defined in namespace monitoring" in missing.stderr


def test_ca_rotate_asks_the_leader_through_the_secret(
    kube_cluster: KubeCluster, admin: Kube
) -> None:
    args = kube_args(kube_cluster)
    assert (
        run_atlas(["cluster", "add", "east", "--external-ip", "192.0.2.10", *args]).returncode == 0
    )
    make_ca(admin)
    assert (
        run_atlas(["cluster", "values", "east", "--observability-address", "x", *args]).returncode
        == 0
    )
    rotated = run_atlas(["ca", "rotate", *args])
    assert rotated.returncode == 0, rotated.stderr
    ca = admin.call("get", admin.core.read_namespaced_secret, "atlas-ca", NAMESPACE)
    assert ca["metadata"]["annotations"]["goatlas.io/ca-rotate"] == "requested"

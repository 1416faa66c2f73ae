"""A namespace where goatlas.io/atlas ran, and a kube-prometheus-stack install, against the
real API server: Atlas adopts the Go project's CA, destroys none of its Secrets, and raises no
error about the chart's own Alertmanager Service."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atlas.kube import Kube
from tests.atlas.test_pki import openssl_verify
from tests.fakes.objects import service_object
from tests.kube.cluster import KubeCluster
from tests.kube.conftest import NAMESPACE, service
from tests.kube.objects import data, secret, written
from tests.kube.test_leader import running_leader
from tests.polling import until

pytestmark = pytest.mark.e2e

GO_CA_LABELS = {
    "atlas.ekristen.github.com/ca": "true",
    "atlas.ekristen.github.com/ca-revision": "1",
}
GO_VALUES = "# written by goatlas.io/atlas\nenvoy:\n  clusterId: east\n"


def goatlas_ca() -> tuple[bytes, bytes]:
    """A CA as goatlas.io/atlas generated it: RSA, PKCS#1 ("RSA PRIVATE KEY"), CA with
    digitalSignature|certSign and the client/server EKUs, its fixed subject."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "DC"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Washington"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ekristen.github.io"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Atlas"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(now.timestamp()))
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def go_secret(name: str, payload: dict[str, bytes], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "data": {k: b64(v) for k, v in payload.items()},
    }


async def test_goatlas_secrets_are_adopted_and_kept(
    admin: Kube, kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    ca_pem, key_pem = goatlas_ca()
    admin.call(
        "create",
        admin.core.create_namespaced_secret,
        NAMESPACE,
        go_secret("atlas-ca", {"ca.pem": ca_pem, "ca-key.pem": key_pem}, GO_CA_LABELS),
    )
    for name in ("east-envoy-values", "atlas-envoy-values"):
        admin.call(
            "create",
            admin.core.create_namespaced_secret,
            NAMESPACE,
            go_secret(name, {"values.yaml": GO_VALUES.encode()}, {}),
        )
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    async with running_leader(kube_cluster):
        await _check_adoption(admin, ca_pem, key_pem, tmp_path)


async def _check_adoption(admin: Kube, ca_pem: bytes, key_pem: bytes, tmp_path: Path) -> None:
    go_ca = x509.load_pem_x509_certificate(ca_pem)
    node = await written(admin, "atlas-node-east")
    leaf = x509.load_pem_x509_certificate(data(node, "tls.crt"))
    leaf.verify_directly_issued_by(go_ca)  # the Go project's CA signs Atlas's leaves
    for purpose in ("sslclient", "sslserver"):
        verified = openssl_verify(tmp_path, ca_pem, data(node, "tls.crt"), purpose)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    backup = await written(admin, "east-envoy-values-goatlas")
    assert data(backup, "values.yaml").decode() == GO_VALUES
    assert backup["metadata"]["annotations"]["goatlas.io/backup-of"] == "east-envoy-values"
    obs_backup = await written(admin, "atlas-envoy-values-goatlas")
    assert data(obs_backup, "values.yaml").decode() == GO_VALUES

    def atlas_values() -> dict[str, Any] | None:
        obj = secret(admin, "east-envoy-values")
        labels = (obj or {}).get("metadata", {}).get("labels") or {}
        return obj if labels.get("goatlas.io/managed-by") == "atlas" else None

    values = yaml.safe_load(
        data(
            await until(atlas_values, within=10, what="Atlas's values", blocking=True),
            "values.yaml",
        )
    )
    assert values["nodeId"] == "east"
    assert values["certificates"]["ca.crt"].encode() == ca_pem, "downstream trust continues"

    ca = secret(admin, "atlas-ca")
    assert ca is not None
    assert data(ca, "ca.pem") == ca_pem and data(ca, "ca-key.pem") == key_pem
    assert "ca.crt" not in ca["data"], "adopted as it is: nothing rewritten"

    # A rotation adds Atlas's keys beside the Go project's, which stay for a rollback.
    body = dict(ca)
    body["metadata"].setdefault("annotations", {})["goatlas.io/ca-rotate"] = "now"
    admin.call("replace", admin.core.replace_namespaced_secret, "atlas-ca", NAMESPACE, body)

    def rotated() -> dict[str, Any] | None:
        obj = secret(admin, "atlas-ca")
        return obj if obj and "ca.crt" in obj["data"] else None

    after = await until(rotated, within=10, what="rotation", blocking=True)
    assert data(after, "ca.pem") == ca_pem and data(after, "ca-key.pem") == key_pem
    assert data(after, "ca-previous.pem") == ca_pem, "the Go CA stays trusted"
    labels = after["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in GO_CA_LABELS.items()), labels
    assert "goatlas.io/ca-rotate" not in (after["metadata"].get("annotations") or {})


def kps_alertmanager(name: str, pod: str | None) -> dict[str, Any]:
    """kube-prometheus-stack's Alertmanager Services: the main one selects every replica,
    ``servicePerReplica`` ones select one pod each; all carry the same ``app`` label."""
    selector = {
        "alertmanager": "kube-prometheus-stack-alertmanager",
        "app.kubernetes.io/name": "alertmanager",
    }
    if pod is not None:
        selector["statefulset.kubernetes.io/pod-name"] = pod
    labels = {"app": "kube-prometheus-stack-alertmanager", "release": "kube-prometheus-stack"}
    ports: list[dict[str, Any]] = [
        {"name": "http-web", "port": 9093, "targetPort": 9093},
        {"name": "reloader-web", "port": 8080, "targetPort": "reloader-web"},
    ]
    spec = {"selector": selector, "ports": ports}
    return service_object(name, namespace=NAMESPACE, labels=labels, spec=spec)


async def test_a_kube_prometheus_stack_install_raises_no_error(
    admin: Kube, kube_cluster: KubeCluster
) -> None:
    for name, pod in (
        ("kube-prometheus-stack-alertmanager", None),
        (
            "kube-prometheus-stack-alertmanager-0",
            "alertmanager-kube-prometheus-stack-alertmanager-0",
        ),
        (
            "kube-prometheus-stack-alertmanager-1",
            "alertmanager-kube-prometheus-stack-alertmanager-1",
        ),
    ):
        admin.call(
            "create", admin.core.create_namespaced_service, NAMESPACE, kps_alertmanager(name, pod)
        )
    admin.call("create", admin.core.create_namespaced_service, NAMESPACE, service("east"))
    async with running_leader(kube_cluster) as atlas:

        def synced() -> bool:
            state = atlas.state
            return bool(state and state.synced and len(state.topology.alertmanagers) == 2)

        await until(synced, within=10, what="both replicas", blocking=True)
        await written(admin, "east-envoy-values")
        assert atlas.state is not None and atlas.state.messages == ()
        events = admin.call("list", admin.core.list_namespaced_event, NAMESPACE)["items"]
        assert [e for e in events if e["type"] == "Warning"] == []
        assert [a.replica for a in atlas.state.topology.alertmanagers] == [0, 1]

"""PKI: chains and SANs checked with cryptography and the real ``openssl verify``."""

from __future__ import annotations

import logging
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from atlas.errors import PKIError
from atlas.pki import (
    OBSERVABILITY_URI,
    CAState,
    Credential,
    cluster_uri,
    create_ca,
    drop_previous,
    issue,
    rotate,
)
from atlas.pki_store import CertificateManager, DirectoryStore


@pytest.fixture(scope="module")
def ca() -> Credential:
    return create_ca()


def openssl_verify(
    tmp_path: Path, bundle: bytes, leaf: bytes, purpose: str, *, untrusted: bytes = b""
) -> subprocess.CompletedProcess[str]:
    """``openssl verify`` of ``leaf`` against ``bundle``; ``untrusted`` are chain certificates
    the peer would present (e.g. a cross-signed CA)."""
    (tmp_path / "bundle.pem").write_bytes(bundle)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    chain: list[str] = []
    if untrusted:
        (tmp_path / "chain.pem").write_bytes(untrusted)
        chain = ["-untrusted", str(tmp_path / "chain.pem")]
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            purpose,
            "-CAfile",
            str(tmp_path / "bundle.pem"),
            *chain,
            str(tmp_path / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_leaf_has_spiffe_uri_and_usages(ca: Credential) -> None:
    leaf = issue(ca, cluster_uri("east"), dns_names=("envoy.east",), ips=("127.0.0.2",))
    cert = leaf.certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://atlas/cluster/east"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["envoy.east"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.2"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca.certificate)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_openssl_verifies_chain_and_purpose(ca: Credential, tmp_path: Path) -> None:
    client_only = issue(ca, OBSERVABILITY_URI, server=False)
    ok = openssl_verify(tmp_path, ca.cert_pem, client_only.cert_pem, "sslclient")
    assert ok.returncode == 0, ok.stderr
    wrong = openssl_verify(tmp_path, ca.cert_pem, client_only.cert_pem, "sslserver")
    assert wrong.returncode != 0
    other = create_ca()
    foreign = openssl_verify(tmp_path, other.cert_pem, client_only.cert_pem, "sslclient")
    assert foreign.returncode != 0


def test_rsa_keys(tmp_path: Path) -> None:
    ca = create_ca(key_type="rsa")
    leaf = issue(ca, cluster_uri("west"), key_type="rsa")
    key = leaf.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 3072
    assert openssl_verify(tmp_path, ca.cert_pem, leaf.cert_pem, "sslserver").returncode == 0


def test_lifetimes_and_renewal_window(ca: Credential) -> None:
    now = datetime.now(UTC)
    leaf = issue(ca, cluster_uri("east"), lifetime=timedelta(days=30), now=now)
    assert abs(leaf.not_after - now - timedelta(days=30)) < timedelta(seconds=1)
    assert not leaf.needs_renewal(now + timedelta(days=19))
    assert leaf.needs_renewal(now + timedelta(days=20, hours=1))
    assert leaf.needs_renewal(now + timedelta(days=31))
    boot = issue(ca, cluster_uri("east"), lifetime=timedelta(days=365), now=now)
    assert abs(boot.not_after - now - timedelta(days=365)) < timedelta(seconds=1)


def test_a_short_leaf_is_not_due_for_renewal_as_it_is_issued(ca: Credential) -> None:
    """Its lifetime counts from its issue, not from its start five minutes earlier (there for
    lagging clocks): a 36 s leaf was renewed on every build, and in Kubernetes each write woke
    the next build (found by the randomized run)."""
    now = datetime.now(UTC)
    leaf = issue(ca, cluster_uri("east"), lifetime=timedelta(seconds=36), now=now)
    assert not leaf.needs_renewal(now + timedelta(seconds=1))
    assert not leaf.needs_renewal(now + timedelta(seconds=23))
    assert leaf.needs_renewal(now + timedelta(seconds=25))


def test_leaf_never_outlives_its_ca() -> None:
    short_ca = create_ca(lifetime=timedelta(days=10))
    leaf = issue(short_ca, cluster_uri("east"), lifetime=timedelta(days=365))
    assert leaf.not_after <= short_ca.not_after


def test_rotation_keeps_old_leaves_valid_until_dropped(ca: Credential, tmp_path: Path) -> None:
    old_leaf = issue(ca, cluster_uri("east"))
    rotated = rotate(CAState(ca))
    new_leaf = issue(rotated.current, cluster_uri("east"))
    assert rotated.current.certificate.subject != ca.certificate.subject
    for leaf in (old_leaf, new_leaf):
        result = openssl_verify(tmp_path, rotated.bundle_pem, leaf.cert_pem, "sslserver")
        assert result.returncode == 0, result.stderr
    dropped = drop_previous(rotated)
    assert openssl_verify(tmp_path, dropped.bundle_pem, old_leaf.cert_pem, "sslserver").returncode
    assert (
        openssl_verify(tmp_path, dropped.bundle_pem, new_leaf.cert_pem, "sslserver").returncode == 0
    )


def test_keys_never_in_repr_or_errors(ca: Credential, caplog: pytest.LogCaptureFixture) -> None:
    leaf = issue(ca, cluster_uri("east"))
    key_body = leaf.key_pem.decode().splitlines()[1]
    assert key_body not in repr(leaf)
    assert "PRIVATE KEY" not in repr(leaf) and "PRIVATE KEY" not in repr(CAState(ca))
    broken = Credential(
        ca.cert_pem,
        b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----\n",
    )
    with pytest.raises(PKIError) as info:
        issue(broken, cluster_uri("east"))
    assert "c2VjcmV0" not in str(info.value) and info.value.__cause__ is None


def test_bad_identity_rejected(ca: Credential) -> None:
    with pytest.raises(PKIError, match="not under spiffe://atlas/"):
        issue(ca, "spiffe://evil/cluster/east")
    with pytest.raises(PKIError, match="server or client"):
        issue(ca, cluster_uri("east"), server=False, client=False)


def test_directory_store_permissions_and_reuse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    manager = CertificateManager(DirectoryStore(tmp_path))
    first = manager.credential("cluster-east", cluster_uri("east"))
    again = CertificateManager(DirectoryStore(tmp_path)).credential(
        "cluster-east", cluster_uri("east")
    )
    assert again.cert_pem == first.cert_pem, "a fresh credential is reused, not re-issued"
    for path in (tmp_path / "pki").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    assert not list((tmp_path / "pki").glob(".*tmp")), "no temporary files left behind"
    logged = caplog.text
    assert "PRIVATE KEY" not in logged and first.key_pem.decode().splitlines()[1] not in logged


def test_manager_renews_and_reissues_after_rotation(tmp_path: Path) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    first = manager.credential("cluster-east", cluster_uri("east"))
    later = datetime.now(UTC) + timedelta(days=25)
    renewed = manager.credential("cluster-east", cluster_uri("east"), now=later)
    assert renewed.cert_pem != first.cert_pem
    assert renewed.not_after > first.not_after
    state = manager.rotate_ca()
    assert len(state.previous) == 1
    reissued = manager.credential("cluster-east", cluster_uri("east"))
    assert reissued.issued_by(state.current.certificate)
    assert not renewed.issued_by(state.current.certificate)
    assert manager.store.load_ca() == state
    assert manager.drop_previous_cas().previous == ()


def test_store_rejects_path_names(tmp_path: Path) -> None:
    with pytest.raises(PKIError, match="invalid credential name"):
        DirectoryStore(tmp_path).load("../../etc/passwd")


def test_cross_signed_ca_bridges_old_bundles_to_new_leaves(tmp_path: Path) -> None:
    """After a rotation a server presents [leaf, cross-signed CA]: a client that trusts only
    the old CA verifies it, and so does one that trusts only the new CA."""
    old = CAState(create_ca())
    rotated = rotate(old)
    leaf = issue(rotated.current, cluster_uri("east"))
    for trusted in (old.current.cert_pem, rotated.current.cert_pem):
        result = openssl_verify(
            tmp_path, trusted, leaf.cert_pem, "sslserver", untrusted=rotated.cross_signed
        )
        assert result.returncode == 0, result.stderr
    assert drop_previous(rotated).cross_signed == b""

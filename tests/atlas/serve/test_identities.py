"""Node credentials: cached, handed out as the same objects until something changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from atlas.pki import cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore
from atlas.serve.identities import NodeIdentities


def test_unchanged_credentials_are_the_same_objects(tmp_path: Path) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    identities = NodeIdentities(manager, "atlas")
    first = identities(["atlas", "east", "west"])
    second = identities(["atlas", "east", "west"])
    # The snapshot builder keeps a node's snapshot when its credentials are the same object.
    assert all(second[n] is first[n] for n in first)
    assert first["east"].cert_pem != first["west"].cert_pem

    manager.rotate_ca()
    third = identities(["atlas", "east"])
    assert third["east"] is not first["east"]
    assert third["east"].cert_pem != first["east"].cert_pem, "re-issued by the new CA"
    assert third["east"].bundle_pem != first["east"].bundle_pem, "the bundle holds both CAs"
    assert manager.store.load("node-east").uri == cluster_uri("east")  # type: ignore[union-attr]


def test_a_removed_cluster_loses_its_credentials_and_comes_back_as_a_new_member(
    tmp_path: Path,
) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    identities = NodeIdentities(manager, "atlas")
    first = identities(["atlas", "east", "gone"])
    bootstrap = manager.credential("bootstrap-gone", cluster_uri("gone"), server=False)
    assert bootstrap.membership and first["gone"].principal.startswith("urn:atlas:member:gone:")
    identities(["atlas", "east"])
    # Clusters come and go: the cache holds only current nodes, not every node ever seen...
    assert sorted(identities._cache) == ["atlas", "east"]
    # ...and a removed cluster's credentials are deleted, its leaf and its bootstrap one.
    assert manager.store.load("node-gone") is None
    assert manager.store.load("bootstrap-gone") is None
    assert manager.store.load("node-east") is not None, "members keep theirs"
    again = identities(["atlas", "east", "gone"])
    assert again["gone"].cert_pem != first["gone"].cert_pem
    assert again["gone"].principal != first["gone"].principal, "a new membership token"


def test_renewal_keeps_the_membership(tmp_path: Path) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    first = manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    later = datetime.now(UTC) + timedelta(days=300)
    renewed = manager.credential("bootstrap-east", cluster_uri("east"), server=False, now=later)
    assert renewed.cert_pem != first.cert_pem and renewed.membership == first.membership
    manager.rotate_ca()
    reissued = manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    assert reissued.cert_pem != renewed.cert_pem and reissued.membership == first.membership


def test_a_follower_deletes_nothing_and_a_leader_looks_at_the_whole_store(
    tmp_path: Path,
) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    for cluster in ("east", "stale"):
        manager.credential(f"node-{cluster}", cluster_uri(cluster))
        manager.credential(f"bootstrap-{cluster}", cluster_uri(cluster), server=False)
    leader = [False]
    identities = NodeIdentities(manager, "atlas", may_issue=lambda: leader[0])
    identities(["atlas", "east"])
    assert manager.store.load("node-stale") is not None, "only the leader writes"
    leader[0] = True
    identities(["atlas", "east"])  # removed while no replica was issuing: found in the store
    assert manager.store.names() == ("bootstrap-east", "node-east", "observability")

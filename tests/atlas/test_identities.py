"""Node credentials: cached, handed out as the same objects until something changes."""

from __future__ import annotations

from pathlib import Path

from atlas.identities import NodeIdentities
from atlas.pki import cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore


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


def test_nodes_no_longer_asked_for_are_forgotten(tmp_path: Path) -> None:
    identities = NodeIdentities(CertificateManager(DirectoryStore(tmp_path)), "atlas")
    first = identities(["atlas", "east", "gone"])
    identities(["atlas", "east"])
    # Clusters come and go: the cache holds only current nodes, not every node ever seen.
    assert sorted(identities._cache) == ["atlas", "east"]
    again = identities(["atlas", "east", "gone"])
    assert again["gone"] is not first["gone"], "handed out anew (from the store)"
    assert again["gone"].cert_pem == first["gone"].cert_pem, "the stored leaf, not a new one"

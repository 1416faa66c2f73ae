"""Who may hold an ADS stream: current members with their current bootstrap credential."""

from __future__ import annotations

import asyncio
from pathlib import Path

from atlas.admission import MemberAdmission
from atlas.pki import OBSERVABILITY_URI, cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore


def admission(manager: CertificateManager, members: frozenset[str] | None) -> MemberAdmission:
    published = asyncio.Event()
    return MemberAdmission(
        "atlas",
        check_identity=True,
        members=lambda: members,
        published=published,
        bootstrap=lambda node: manager.store.load(f"bootstrap-{node}"),
    )


def test_members_with_their_current_credential_only(tmp_path: Path) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    east = manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    gate = admission(manager, frozenset({"atlas", "east", "west"}))
    assert gate.refusal("east", east.certificate) is None
    obs = manager.credential("bootstrap-atlas", OBSERVABILITY_URI, server=False)
    assert gate.refusal("atlas", obs.certificate) is None
    refused = gate.refusal("west", east.certificate)
    assert refused is not None and refused.reason == "identity"
    # West is a member, but has no bootstrap credential in the store yet.
    west = CertificateManager(DirectoryStore(tmp_path / "elsewhere")).credential(
        "bootstrap-west", cluster_uri("west"), server=False
    )
    refused = gate.refusal("west", west.certificate)
    assert refused is not None and refused.reason == "no_credential"
    # East removed: its credentials deleted; added again: a new membership.
    manager.forget_cluster("east")
    manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    refused = gate.refusal("east", east.certificate)
    assert refused is not None and refused.reason == "old_credential"
    assert "earlier membership" in refused.message


def test_not_a_member_and_without_tls(tmp_path: Path) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    north = manager.credential("bootstrap-north", cluster_uri("north"), server=False)
    gate = admission(manager, frozenset({"atlas", "east"}))
    refused = gate.refusal("north", north.certificate)
    assert refused is not None and refused.reason == "not_a_member"
    assert not gate.still_member("north") and gate.still_member("atlas")
    plaintext = MemberAdmission(
        "atlas",
        check_identity=False,
        members=lambda: frozenset({"atlas", "east"}),
        published=asyncio.Event(),
        bootstrap=lambda node: None,
    )
    assert plaintext.refusal("east", None) is None, "no certificate: nothing to pin"
    assert plaintext.refusal("made-up", None) is not None, "but membership still counts"
    assert admission(manager, None).still_member("east") is False, "nothing published yet"

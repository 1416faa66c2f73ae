"""Who may hold an ADS stream: current members with their current bootstrap credential."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from atlas.pki import OBSERVABILITY_URI, cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore
from atlas.serve.admission import PIN_SECONDS, MemberAdmission


def admission(
    manager: CertificateManager,
    members: frozenset[str] | None,
    clock: Callable[[], float] = time.monotonic,
) -> MemberAdmission:
    published = asyncio.Event()
    return MemberAdmission(
        "atlas",
        check_identity=True,
        members=lambda: members,
        published=published,
        bootstrap=lambda node: manager.store.load(f"bootstrap-{node}"),
        clock=clock,
    )


async def test_members_with_their_current_credential_only(tmp_path: Path) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    east = manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    gate = admission(manager, frozenset({"atlas", "east", "west"}))
    assert await gate.refusal("east", east.certificate) is None
    obs = manager.credential("bootstrap-atlas", OBSERVABILITY_URI, server=False)
    assert await gate.refusal("atlas", obs.certificate) is None
    refused = await gate.refusal("west", east.certificate)
    assert refused is not None and refused.reason == "identity"
    # West is a member, but has no bootstrap credential in the store yet.
    west = CertificateManager(DirectoryStore(tmp_path / "elsewhere")).credential(
        "bootstrap-west", cluster_uri("west"), server=False
    )
    refused = await gate.refusal("west", west.certificate)
    assert refused is not None and refused.reason == "no_credential"
    # East removed (a build without it), its credentials deleted; added again (a build with
    # it): a new membership, and the old credential is refused at once.
    current = {"members": frozenset({"atlas", "east", "west"})}
    gate.members = lambda: current["members"]
    assert await gate.refusal("east", east.certificate) is None
    current["members"] = frozenset({"atlas", "west"})
    manager.forget_cluster("east")
    new_east = manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    current["members"] = frozenset({"atlas", "east", "west"})
    refused = await gate.refusal("east", east.certificate)
    assert refused is not None and refused.reason == "old_credential"
    assert "earlier membership" in refused.message
    assert await gate.refusal("east", new_east.certificate) is None


async def test_a_replica_that_missed_the_removal_rereads_the_store_soon(tmp_path: Path) -> None:
    """Removed and re-added within this replica's debounce: its member set never changed, but
    the leader re-issued the credential. The stored token is trusted for PIN_SECONDS only."""
    manager = CertificateManager(DirectoryStore(tmp_path))
    old = manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    now = [100.0]
    gate = admission(manager, frozenset({"atlas", "east"}), clock=lambda: now[0])
    assert await gate.refusal("east", old.certificate) is None
    manager.forget_cluster("east")
    new = manager.credential("bootstrap-east", cluster_uri("east"), server=False)
    assert await gate.refusal("east", old.certificate) is None, "read moments ago: trusted"
    now[0] += PIN_SECONDS
    refused = await gate.refusal("east", old.certificate)
    assert refused is not None and refused.reason == "old_credential"
    assert await gate.refusal("east", new.certificate) is None


async def test_not_a_member_and_without_tls(tmp_path: Path) -> None:
    manager = CertificateManager(DirectoryStore(tmp_path))
    north = manager.credential("bootstrap-north", cluster_uri("north"), server=False)
    gate = admission(manager, frozenset({"atlas", "east"}))
    refused = await gate.refusal("north", north.certificate)
    assert refused is not None and refused.reason == "not_a_member"
    assert not gate.still_member("north") and gate.still_member("atlas")
    plaintext = MemberAdmission(
        "atlas",
        check_identity=False,
        members=lambda: frozenset({"atlas", "east"}),
        published=asyncio.Event(),
        bootstrap=lambda node: None,
    )
    assert await plaintext.refusal("east", None) is None, "no certificate: nothing to pin"
    assert await plaintext.refusal("made-up", None) is not None, "but membership still counts"
    assert admission(manager, None).still_member("east") is False, "nothing published yet"

"""Who may hold an ADS stream: the current members, each with its current credential.

Atlas's gRPC port is reached through the observability Envoy's port 10900, which passes TLS
through, so the downstream Envoy's bootstrap credential is verified here, end to end, and this
is where a removed or replaced cluster is refused:

* the node id must be the identity in the client certificate (``IdentityAdmission``);
* the node must be the observability node or a cluster of the last published topology;
* a cluster's certificate must carry the membership token of its current bootstrap credential
  (``bootstrap-<cluster>`` in the PKI store, which the leader keeps and deletes with the
  cluster). A credential issued before a removal, or before membership tokens existed while
  the stored one has a token, is refused although the CA signed it.

The observability node is not pinned: it is not added and removed like clusters, and its
replicas share one identity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import lru_cache

from cryptography import x509

from atlas.errors import PKIError
from atlas.pki import Credential, membership_of
from xds_server.admission import IdentityAdmission, Refusal

__all__ = ["MemberAdmission"]


@lru_cache(maxsize=16384)
def _stored_membership(cert_pem: bytes) -> str:
    return Credential(cert_pem, b"").membership


class MemberAdmission:
    def __init__(
        self,
        observability_node: str,
        *,
        check_identity: bool,
        members: Callable[[], frozenset[str] | None],
        published: asyncio.Event,
        bootstrap: Callable[[str], Credential | None],
    ) -> None:
        """``members``: the nodes of the last published topology (None before the first);
        ``bootstrap``: a cluster's stored bootstrap credential (may read the store)."""
        self.identity = IdentityAdmission(observability_node, check_identity=check_identity)
        self.observability_node = observability_node
        self.check_identity = check_identity
        self.members = members
        self.published = published
        self.bootstrap = bootstrap

    async def ready(self) -> None:
        await self.published.wait()

    def refusal(self, node: str, certificate: x509.Certificate | None) -> Refusal | None:
        refused = self.identity.refusal(node, certificate)
        if refused is not None or node == self.observability_node:
            return refused
        if not self.still_member(node):
            return Refusal(
                "not_a_member",
                f"{node!r} is not a cluster of this Atlas (removed, or not added yet)",
            )
        if certificate is None:  # plaintext ADS (tests, demos): nothing to pin
            return None
        try:
            stored = self.bootstrap(node)
        except PKIError:
            stored = None
        if stored is None:
            return Refusal(
                "no_credential",
                f"cluster {node!r} has no current bootstrap credential: install its Envoy "
                "with its current values",
            )
        if membership_of(certificate) != _stored_membership(stored.cert_pem):
            return Refusal(
                "old_credential",
                f"this credential of {node!r} is from an earlier membership of the cluster "
                "(it was removed and added again): install its Envoy with its current values",
            )
        return None

    def still_member(self, node: str) -> bool:
        if node == self.observability_node:
            return True
        members = self.members()
        return members is not None and node in members

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
import time
from collections.abc import Callable
from functools import lru_cache

from cryptography import x509

from atlas.errors import PKIError
from atlas.pki import Credential, membership_of
from xds_server.admission import IdentityAdmission, Refusal

__all__ = ["PIN_SECONDS", "MemberAdmission"]

PIN_SECONDS = 5.0
"""How long a read of a cluster's stored bootstrap credential is trusted (see _pinned)."""


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``members``: the nodes of the last published topology (None before the first);
        ``bootstrap``: a cluster's stored bootstrap credential (may read the store)."""
        self.identity = IdentityAdmission(observability_node, check_identity=check_identity)
        self.observability_node = observability_node
        self.members = members
        self.published = published
        self.bootstrap = bootstrap
        self.clock = clock
        self._pinned: dict[str, tuple[float, str | None]] = {}
        """Per cluster, when it was read and the membership token of its stored bootstrap
        credential (None: there is none). A token changes only when a cluster is removed and
        added again, which changes the member set twice; but a replica can miss that (both
        within its debounce) while the leader re-issued the credential, so a read is also
        trusted for ``PIN_SECONDS`` only. A fleet reconnecting at once reads each once."""
        self._pinned_for: frozenset[str] | None = None

    async def ready(self) -> None:
        await self.published.wait()

    async def refusal(self, node: str, certificate: x509.Certificate | None) -> Refusal | None:
        refused = self.identity.check(node, certificate)
        if refused is not None or node == self.observability_node:
            return refused
        if not self.still_member(node):
            return Refusal(
                "not_a_member",
                f"{node!r} is not a cluster of this Atlas (removed, or not added yet)",
            )
        if certificate is None:  # plaintext ADS (tests, demos): nothing to pin
            return None
        pinned = await self._pinned_membership(node)
        if pinned is None:
            return Refusal(
                "no_credential",
                f"cluster {node!r} has no current bootstrap credential: install its Envoy "
                "with its current values",
            )
        if membership_of(certificate) != pinned:
            return Refusal(
                "old_credential",
                f"this credential of {node!r} is from an earlier membership of the cluster "
                "(it was removed and added again): install its Envoy with its current values",
            )
        return None

    async def _pinned_membership(self, node: str) -> str | None:
        members = self.members()
        if members is not self._pinned_for:
            self._pinned, self._pinned_for = {}, members
        now = self.clock()
        cached = self._pinned.get(node)
        if cached is not None and now - cached[0] < PIN_SECONDS:
            return cached[1]
        pinned = await asyncio.to_thread(self._read_pinned, node)
        if self._pinned_for is members:  # else a build was published meanwhile: not kept
            self._pinned[node] = (now, pinned)
        return pinned

    def _read_pinned(self, node: str) -> str | None:
        try:
            stored = self.bootstrap(node)
        except PKIError:
            return None
        return None if stored is None else _stored_membership(stored.cert_pem)

    def still_member(self, node: str) -> bool:
        if node == self.observability_node:
            return True
        members = self.members()
        return members is not None and node in members

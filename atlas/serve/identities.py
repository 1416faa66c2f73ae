"""Every proxy's credential, kept in memory and re-issued through the PKI when needed.

Rebuilding snapshots asks for the credentials of all nodes; reading thousands of files for
that would dominate a rebuild, so credentials are cached here and the store is only touched
when a leaf is new, due for renewal, or signed by a CA that is no longer current.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from atlas.errors import PKIError
from atlas.pki import OBSERVABILITY_URI, CAState, Credential, cluster_uri, membership_uri
from atlas.pki_store import CLUSTER_CREDENTIALS, CertificateManager, leaf_name
from xds_server.builders import NodeCredentials

__all__ = ["NodeIdentities"]

log = logging.getLogger(__name__)


class NodeIdentities:
    def __init__(
        self,
        manager: CertificateManager,
        observability_node: str,
        may_issue: Callable[[], bool] = lambda: True,
    ) -> None:
        self.manager = manager
        self.observability_node = observability_node
        self.may_issue = may_issue
        """False on a follower: it serves what the leader stored and never issues."""
        self._cache: dict[str, tuple[Credential, bytes]] = {}
        self._handed: dict[str, NodeCredentials] = {}
        self._lock = threading.Lock()
        self._members: set[str] | None = None
        """The nodes of the last call while issuing; None: look at the whole store next."""

    def _store_name(self, node: str) -> tuple[str, str]:
        if node == self.observability_node:
            return "observability", OBSERVABILITY_URI
        return leaf_name(node), cluster_uri(node)

    def _fresh(self, node: str, ca: CAState, now: datetime) -> Credential | None:
        cached = self._cache.get(node)
        # Comparing the CA's bytes is enough to notice a rotation, and far cheaper than
        # verifying a signature per node on every rebuild.
        if (
            cached is not None
            and cached[1] == ca.current.cert_pem
            and not cached[0].needs_renewal(now)
        ):
            return cached[0]
        name, uri = self._store_name(node)
        if self.may_issue():
            credential = self.manager.credential(name, uri)
        else:
            stored = self.manager.store.load(name)
            if stored is None or stored.uri != uri or not stored.issued_by(ca.current.certificate):
                return None  # the leader has not issued it yet: this node waits
            credential = stored
        self._cache[node] = (credential, ca.current.cert_pem)
        return credential

    def __call__(self, nodes: Iterable[str]) -> dict[str, NodeCredentials]:
        """Credentials of ``nodes``, which are all the nodes there are: the publisher asks for
        every node on each build, so nodes not asked for are forgotten (clusters come and go)."""
        nodes = list(nodes)
        with self._lock:
            for gone in self._cache.keys() - set(nodes):
                del self._cache[gone]
                self._handed.pop(gone, None)
            if self.may_issue():
                self._retire(set(nodes))
            else:
                self._members = None  # a new leader looks at the whole store first
            ca = self.manager.store.load_ca() if not self.may_issue() else self.manager.ca()
            if ca is None:
                return {}
            bundle = ca.bundle_pem
            now = datetime.now(UTC)
            result: dict[str, NodeCredentials] = {}
            for node in nodes:
                try:
                    credential = self._fresh(node, ca, now)
                except PKIError as err:
                    log.warning("no credential for node %s yet: %s", node, err)
                    continue
                if credential is not None:
                    result[node] = self._handed_out(node, credential, bundle)
            return result

    def _retire(self, nodes: set[str]) -> None:
        """Delete the credentials of clusters that are no longer members, before anything can
        issue them again: a cluster added back gets a new membership, and every credential of
        its earlier one stays refused. The first time (and after leadership returns) the whole
        store is looked at, for clusters removed while no replica was issuing."""
        if self._members is None:
            stored = self.manager.store.names()
            candidates = {
                name.split("-", 1)[1] for name in stored if name.startswith(CLUSTER_CREDENTIALS)
            }
        else:
            candidates = self._members - nodes
        self._members = nodes
        for cluster in sorted(candidates - nodes - {self.observability_node}):
            try:
                self.manager.forget_cluster(cluster)
            except PKIError as err:
                log.warning("could not delete the credentials of removed %s: %s", cluster, err)
                self._members.add(cluster)  # try again on the next build

    def _handed_out(self, node: str, credential: Credential, bundle: bytes) -> NodeCredentials:
        """The same object as last time when nothing changed: the snapshot builder tells
        unchanged nodes apart by identity, which matters at 10,000 nodes."""
        last = self._handed.get(node)
        if (
            last is not None
            and last.cert_pem == credential.cert_pem
            and last.key_pem == credential.key_pem
            and last.bundle_pem == bundle
        ):
            return last
        principal = ""
        if node != self.observability_node and credential.membership:
            principal = membership_uri(node, credential.membership)
        creds = NodeCredentials(credential.cert_pem, credential.key_pem, bundle, principal)
        self._handed[node] = creds
        return creds

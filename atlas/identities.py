"""Every proxy's credential, kept in memory and re-issued through the PKI when needed.

Rebuilding snapshots asks for the credentials of all nodes; reading thousands of files for
that would dominate a rebuild, so credentials are cached here and the store is only touched
when a leaf is new, due for renewal, or signed by a CA that is no longer current.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from atlas.pki import OBSERVABILITY_URI, CAState, Credential, cluster_uri
from atlas.pki_store import CertificateManager
from xds_server.builders import NodeCredentials

__all__ = ["NodeIdentities"]


class NodeIdentities:
    def __init__(self, manager: CertificateManager, observability_node: str) -> None:
        self.manager = manager
        self.observability_node = observability_node
        self._cache: dict[str, tuple[Credential, bytes]] = {}
        self._lock = threading.Lock()

    def _store_name(self, node: str) -> tuple[str, str]:
        if node == self.observability_node:
            return "observability", OBSERVABILITY_URI
        return f"node-{node}", cluster_uri(node)

    def _fresh(self, node: str, ca: CAState) -> Credential:
        cached = self._cache.get(node)
        # Comparing the CA's bytes is enough to notice a rotation, and far cheaper than
        # verifying a signature per node on every rebuild.
        if (
            cached is not None
            and cached[1] == ca.current.cert_pem
            and not cached[0].needs_renewal()
        ):
            return cached[0]
        name, uri = self._store_name(node)
        credential = self.manager.credential(name, uri)
        self._cache[node] = (credential, ca.current.cert_pem)
        return credential

    def __call__(self, nodes: Iterable[str]) -> dict[str, NodeCredentials]:
        with self._lock:
            ca = self.manager.ca()
            bundle = ca.bundle_pem
            result: dict[str, NodeCredentials] = {}
            for node in nodes:
                credential = self._fresh(node, ca)
                result[node] = NodeCredentials(credential.cert_pem, credential.key_pem, bundle)
            return result

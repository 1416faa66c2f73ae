"""Who is connected and what they hold: the data behind the status endpoint and ``atlas status``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from atlas.pki import authority_key_id
from xds_server.types import SHORT

__all__ = ["ClientCertificate", "NodeStatus", "Refused", "StatusBoard"]


@dataclass
class Nack:
    type: str
    version: str
    message: str
    at: float


@dataclass
class Refused:
    """Why Atlas last refused (or ended) this node's stream: what ``atlas status`` shows for
    an Envoy that keeps retrying and never gets in."""

    reason: str
    message: str
    at: float
    certificate_expires: str | None = None
    """The refused client certificate's expiry (not the one it held before)."""


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate a node's Envoy connects to ADS with: its bootstrap credential."""

    issuer_key_id: str | None
    """The signing CA's key id: tells whether it still depends on a previous CA."""
    expires: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> ClientCertificate:
        return cls(authority_key_id(cert), cert.not_valid_after_utc.isoformat())


@dataclass
class NodeStatus:
    node: str
    streams: int = 0
    protocol: str = ""
    peer: str = ""
    sent: dict[str, str] = field(default_factory=dict)
    acked: dict[str, str] = field(default_factory=dict)
    last_nack: Nack | None = None
    last_seen: float = 0.0
    client_certificate: ClientCertificate | None = None
    last_refusal: Refused | None = None
    """Cleared when a stream of the node is admitted."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "connected": self.streams > 0,
            "protocol": self.protocol,
            "peer": self.peer,
            "sent": {SHORT.get(t, t): v for t, v in sorted(self.sent.items())},
            "acked": {SHORT.get(t, t): v for t, v in sorted(self.acked.items())},
            "last_nack": None
            if self.last_nack is None
            else {
                "type": SHORT.get(self.last_nack.type, self.last_nack.type),
                "version": self.last_nack.version,
                "message": self.last_nack.message,
                "at": self.last_nack.at,
            },
            "last_seen": self.last_seen,
            "client_certificate": None
            if self.client_certificate is None
            else {
                "issuer_key_id": self.client_certificate.issuer_key_id,
                "expires": self.client_certificate.expires,
            },
            "last_refusal": None
            if self.last_refusal is None
            else {
                "reason": self.last_refusal.reason,
                "message": self.last_refusal.message,
                "at": self.last_refusal.at,
                "certificate_expires": self.last_refusal.certificate_expires,
            },
        }


class StatusBoard:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeStatus] = {}

    def node(self, node: str) -> NodeStatus:
        status = self._nodes.get(node)
        if status is None:
            status = self._nodes[node] = NodeStatus(node)
        status.last_seen = time.time()
        return status

    def get(self, node: str) -> NodeStatus | None:
        """Read-only lookup (does not mark the node as seen)."""
        return self._nodes.get(node)

    def nack(self, node: str, type_url: str, version: str, message: str) -> None:
        self.node(node).last_nack = Nack(type_url, version, message, time.time())

    def refused(
        self, node: str, reason: str, message: str, certificate: x509.Certificate | None
    ) -> None:
        expires = certificate.not_valid_after_utc.isoformat() if certificate else None
        self.node(node).last_refusal = Refused(reason, message, time.time(), expires)

    def snapshot(self) -> list[dict[str, Any]]:
        return [s.as_dict() for _, s in sorted(self._nodes.items())]

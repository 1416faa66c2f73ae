"""Who may hold an ADS stream, and how much one stream may ask: the server's small contracts.

``Admission`` decides whether a node may stream at all; the server asks it once when a stream
starts (``refusal``, on the event loop: only a store read goes to a thread) and again, cheaply,
whenever that node's snapshot changes (``still_member``), so a removed cluster's stream ends
as soon as its snapshot is taken away. ``IdentityAdmission`` is the base rule (the node id must
be the identity in the client certificate); Atlas's wiring adds membership and credential
pinning (``atlas.serve.admission``).

``atlas.config.AdsSettings`` bounds what one identity can make the server do: streams per node,
and a token bucket per stream. A stream that keeps the bucket empty is slowed down (the server stops
reading it, so HTTP/2 flow control pushes back on the client) and, if it keeps that up, ended
with RESOURCE_EXHAUSTED. No limit depends on other streams: a flooding client slows only its
own stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc
from cryptography import x509

from atlas.pki import OBSERVABILITY_URI, cluster_uri, uri_of

__all__ = [
    "Admission",
    "IdentityAdmission",
    "Refusal",
    "TokenBucket",
    "expected_identity",
]


@dataclass(frozen=True)
class Refusal:
    """Why a stream is refused or ended: ``reason`` labels the metric, ``message`` goes to
    the client (gRPC status details) and to the log."""

    reason: str
    message: str
    code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED


class Admission(Protocol):
    async def ready(self) -> None:
        """Returns once membership is known (the first build is published): a stream that
        arrives earlier waits rather than being refused by a replica that is starting."""
        ...

    async def refusal(self, node: str, certificate: x509.Certificate | None) -> Refusal | None:
        """None when ``node`` may stream with ``certificate`` (None without TLS).

        Called for every new stream, on the event loop: what can be told from memory is
        answered at once (a fleet reconnecting after a restart is 10,000 calls), only a store
        read goes to a thread."""
        ...

    def still_member(self, node: str) -> bool:
        """Whether an admitted node is still one Atlas serves (cheap, on the event loop)."""
        ...


def expected_identity(node: str, observability_node: str) -> str:
    return OBSERVABILITY_URI if node == observability_node else cluster_uri(node)


class IdentityAdmission:
    """The node id must be the identity in the client certificate (with TLS on): a cluster
    cannot ask for another cluster's configuration and secrets."""

    def __init__(self, observability_node: str, *, check_identity: bool) -> None:
        self.observability_node = observability_node
        self.check_identity = check_identity

    async def ready(self) -> None:
        return None

    async def refusal(self, node: str, certificate: x509.Certificate | None) -> Refusal | None:
        return self.check(node, certificate)

    def check(self, node: str, certificate: x509.Certificate | None) -> Refusal | None:
        if not self.check_identity:
            return None
        expected = expected_identity(node, self.observability_node)
        actual = uri_of(certificate) if certificate is not None else None
        if actual == expected:
            return None
        return Refusal(
            "identity", f"node {node!r} requires identity {expected}, certificate has {actual}"
        )

    def still_member(self, node: str) -> bool:
        return True


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``take`` says how long to wait for one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), now

    def take(self, now: float) -> float:
        """Take a token; the seconds until it is really there (0 when it was)."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

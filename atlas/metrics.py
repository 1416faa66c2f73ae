"""Prometheus metrics of the daemon itself (Kubernetes writes, leadership)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["KUBE_WRITES", "LEADER"]

KUBE_WRITES = Counter(
    "atlas_kube_writes_total", "Writes to the Kubernetes API (attempts)", ["verb", "kind"]
)
LEADER = Gauge(
    "atlas_leader",
    "1 while this replica may write: it holds the Lease, or it runs alone on a directory",
)

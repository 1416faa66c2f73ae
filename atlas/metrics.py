"""Prometheus metrics of the core: writes to the Kubernetes API."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["KUBE_WRITES"]

KUBE_WRITES = Counter(
    "atlas_kube_writes_total", "Writes to the Kubernetes API (attempts)", ["verb", "kind"]
)

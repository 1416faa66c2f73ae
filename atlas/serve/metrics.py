"""Prometheus metrics of the daemon: leadership, and the objects its sources reject."""

from __future__ import annotations

from prometheus_client import Gauge

__all__ = ["LEADER", "REJECTED_KINDS", "REJECTED_OBJECTS"]

LEADER = Gauge(
    "atlas_leader",
    "1 while this replica may write: it holds the Lease, or it runs alone on a directory",
)
REJECTED_OBJECTS = Gauge(
    "atlas_rejected_objects",
    "Objects of the sources rejected now (each named in /status errors and logged once): "
    "kind Service (a cluster or Alertmanager Service), or file (a manifest file or document "
    "that could not be read)",
    ["kind"],
)
REJECTED_KINDS = ("Service", "file")
"""Every kind is exported, at 0 too, so that an alert on it has a series from the start."""
for _kind in REJECTED_KINDS:
    REJECTED_OBJECTS.labels(_kind).set(0)

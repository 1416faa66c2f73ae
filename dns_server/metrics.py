"""Prometheus metrics of the DNS face."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["DROPPED", "LATENCY", "QUERIES", "RECORDS", "SERIAL", "TRUNCATED", "count"]

QUERIES = Counter("atlas_dns_queries_total", "DNS queries answered", ["type", "rcode"])
LATENCY = Histogram(
    "atlas_dns_answer_seconds",
    "Time from receiving a query to sending its answer",
    ["transport"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
SERIAL = Gauge("atlas_dns_zone_serial", "Serial of the zone being served")
RECORDS = Gauge("atlas_dns_zone_records", "Records in the zone being served")
TRUNCATED = Counter("atlas_dns_truncated_total", "Answers sent with TC set")
DROPPED = Counter("atlas_dns_dropped_total", "Packets not answered (responses, runts)")

_TYPES = {1: "A", 2: "NS", 6: "SOA", 28: "AAAA", 33: "SRV", 255: "ANY"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED", 16: "BADVERS"}
_children: dict[tuple[int, int], object] = {}


def count(qtype: int, rcode: int) -> None:
    """Increment by label, with the label child cached (labels() is the expensive part)."""
    child = _children.get((qtype, rcode))
    if child is None:
        child = QUERIES.labels(_TYPES.get(qtype, "other"), _RCODES.get(rcode, str(rcode)))
        if len(_children) < 256:
            _children[(qtype, rcode)] = child
    child.inc()  # type: ignore[attr-defined]

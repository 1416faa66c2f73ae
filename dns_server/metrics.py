"""Prometheus metrics of the DNS face."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "DROPPED",
    "INTERNAL_ERRORS",
    "LATENCY",
    "QUERIES",
    "RECORDS",
    "SERIAL",
    "TRUNCATED",
    "child",
]

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
INTERNAL_ERRORS = Counter(
    "atlas_dns_internal_errors_total", "Queries answered SERVFAIL because the answer failed"
)

_TYPES = {1: "A", 2: "NS", 6: "SOA", 28: "AAAA", 33: "SRV", 255: "ANY"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED", 16: "BADVERS"}
_children: dict[tuple[int, int], Any] = {}


class _Uncounted:
    """Dropped packets have no query type or rcode: counted in DROPPED instead."""

    def inc(self) -> None:
        pass


def child(qtype: int, rcode: int) -> Any:
    """The counter for (type, rcode), cached: ``labels()`` is the expensive part."""
    if rcode < 0:
        return _Uncounted()
    counter = _children.get((qtype, rcode))
    if counter is None:
        counter = QUERIES.labels(_TYPES.get(qtype, "other"), _RCODES.get(rcode, str(rcode)))
        if len(_children) < 512:  # types outside the table share "other"; bound regardless
            _children[(qtype, rcode)] = counter
    return counter


UDP_LATENCY = LATENCY.labels("udp")
TCP_LATENCY = LATENCY.labels("tcp")

"""Prometheus metrics of the xDS face (prometheus-client, default registry)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "ACK_LATENCY",
    "BUILD_ERRORS",
    "BUILD_GENERATION",
    "BUILD_SECONDS",
    "CONNECTED",
    "LAST_BUILD",
    "NACKS",
    "PUSHES",
    "REFUSED",
    "REQUESTS",
    "THROTTLED",
    "WAITING",
]


class OpenStreams(Collector):
    """``atlas_xds_connected_streams{node, protocol}``: counted in a dict, written out when
    scraped. A Gauge child per node cost each new stream a labelled lookup and a lock: 5 % of
    a new replica's CPU in a 10,000-stream reconnect storm. A node that disconnects stays at
    0, as a Gauge child would."""

    NAME = "atlas_xds_connected_streams"
    _labelnames = ("node", "protocol")
    """Named as prometheus-client's own metrics name theirs: read where no stream is open
    yet (the reference page's test lists every metric's labels)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}

    def opened(self, node: str, protocol: str) -> None:
        key = (node, protocol)
        self._open[key] = self._open.get(key, 0) + 1

    def closed(self, node: str, protocol: str) -> None:
        self._open[(node, protocol)] -= 1

    def value(self, node: str, protocol: str) -> int:
        return self._open.get((node, protocol), 0)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.NAME, "Open ADS streams", labels=self._labelnames)
        for (node, protocol), count in list(self._open.items()):  # one C call: scrape threads
            family.add_metric([node, protocol], count)
        yield family


CONNECTED = OpenStreams()
REGISTRY.register(CONNECTED)
PUSHES = Counter("atlas_xds_pushes_total", "xDS responses sent", ["node", "type"])
ACK_LATENCY = Histogram(
    "atlas_xds_push_ack_seconds",
    "Time from sending a response to Envoy's ACK",
    ["type"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
NACKS = Counter("atlas_xds_nacks_total", "Responses Envoy rejected", ["node", "type"])
REFUSED = Counter(
    "atlas_xds_refused_streams_total",
    "ADS streams refused or ended by Atlas, by reason (identity, not_a_member, old_credential, "
    "no_credential, revoked, stream_limit, request_rate, backlog)",
    ["reason"],
)
REQUESTS = Counter(
    "atlas_xds_requests_total", "DiscoveryRequests read from ADS streams (after rate limiting)"
)
THROTTLED = Counter(
    "atlas_xds_throttled_requests_total",
    "Requests that waited for their stream's rate limit (a client sending too fast)",
)
BUILD_SECONDS = Histogram(
    "atlas_xds_snapshot_build_seconds",
    "Time to build and check the snapshots for one topology",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BUILD_ERRORS = Counter(
    "atlas_xds_snapshot_build_errors_total",
    "Builds that failed: the previous snapshots keep being served",
)
BUILD_GENERATION = Gauge(
    "atlas_xds_build_generation", "Successful builds since start (the published generation)"
)
LAST_BUILD = Gauge(
    "atlas_xds_last_build_timestamp_seconds",
    "When the snapshots were last built successfully (Unix time): staleness shows here",
)
WAITING = Gauge(
    "atlas_xds_nodes_waiting_for_credentials",
    "Nodes with no credentials yet, so no snapshot (the leader has not issued them)",
)

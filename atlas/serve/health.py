"""What the daemon says about itself: ``/status`` (JSON), ``/healthz`` (liveness) and
``/readyz`` (readiness).

* Live: every supervised task runs (none dead, none waiting to restart, none stuck in a build).
  A failing liveness probe makes Kubernetes restart the pod.
* Ready: the sources were read in full, snapshots were published and the last build succeeded.
  Until then the replica is left out of its Services, as it cannot serve what is current.
* Per node, ``serving`` is what this replica's snapshot holds and ``acked`` what the Envoy last
  ACKed (to this replica, or to any replica it held before: a reconnecting Envoy reports it);
  ``in_sync`` compares the two, so "healthy" is one comparison.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from atlas.config import Settings
from atlas.pki import CAState, Credential, renewal_due, subject_key_id
from watchers.source import SourceState
from xds_server.builders import NodeCredentials
from xds_server.types import SHORT

__all__ = [
    "DnsView",
    "NodeMetrics",
    "Observed",
    "PublisherView",
    "leaf_dates",
    "liveness",
    "readiness",
    "status_document",
]


class PublisherView(Protocol):
    """What health reads of the snapshot publisher."""

    @property
    def builds(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_build_at(self) -> float | None: ...
    @property
    def source_version(self) -> str: ...
    @property
    def config_version(self) -> str: ...
    @property
    def waiting(self) -> tuple[str, ...]: ...
    @property
    def refresh_interval(self) -> float: ...
    @property
    def pending(self) -> bool: ...
    def credentials_of(self, node: str) -> NodeCredentials | None: ...


class DnsView(Protocol):
    """What health reads of the DNS face."""

    @property
    def last_error(self) -> str | None: ...
    def serving(self) -> bool: ...
    @property
    def answer_error(self) -> str | None: ...
    @property
    def synced(self) -> bool: ...
    @property
    def addresses(self) -> tuple[str, ...]: ...
    @property
    def serial(self) -> int | None: ...


class Observed(Protocol):
    """Everything health reads of the daemon, one level deep: a narrow view, so the daemon
    can change inside, and a test can hand in a stand-in."""

    @property
    def state(self) -> SourceState | None: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def publisher(self) -> PublisherView: ...
    @property
    def dns(self) -> DnsView: ...

    def problems(self) -> list[str]:
        """Why a supervised task is not running (liveness)."""

    def may_write(self) -> bool: ...
    def http_serving(self) -> bool: ...
    def current_ca(self) -> CAState | None: ...
    def source_version(self) -> str: ...
    def board_entries(self) -> list[dict[str, Any]]:
        """What each node's Envoy holds, per the status board."""

    def served_nodes(self) -> tuple[str, ...]: ...
    def served_versions(self, node: str) -> Mapping[str, str] | None:
        """Per type, the version of the node's snapshot; None when it has none."""


def liveness(atlas: Observed) -> list[str]:
    return atlas.problems()


def readiness(atlas: Observed) -> list[str]:
    """Why this replica cannot do its job now: each face that cannot answer says so."""
    reasons = liveness(atlas)
    state = atlas.state
    synced = state is not None and state.synced
    if not synced:
        reasons.append("sources not fully read yet")
    publisher = atlas.publisher
    if publisher.builds == 0:
        reasons.append("no snapshot published yet")
    if publisher.last_error is not None:
        reasons.append(f"last build failed: {publisher.last_error}")
    reasons += _dns_problems(atlas, synced)
    if not atlas.http_serving():
        reasons.append("HTTP listener stopped")
    return reasons


def _dns_problems(atlas: Observed, synced: bool) -> list[str]:
    dns = atlas.dns
    reasons = []
    if not dns.serving():
        reasons.append("DNS listener stopped")
    if dns.last_error is not None:
        reasons.append(f"DNS zone not built (answering from the previous one): {dns.last_error}")
    if dns.answer_error is not None:
        reasons.append(f"DNS answers failing (SERVFAIL sent): {dns.answer_error}")
    if synced and dns.synced and not dns.addresses:
        reasons.append(
            "DNS: the SRV targets have no A/AAAA record (Thanos cannot dial them): give the "
            "observability Envoy's IP with --envoy-service-ip, or a Service matching "
            f"envoy_selector {atlas.settings.envoy_selector!r}"
        )
    return reasons


def status_document(atlas: Observed) -> dict[str, Any]:
    state = atlas.state
    publisher = atlas.publisher
    return {
        "synced": bool(state and state.synced),
        "source_version": atlas.source_version(),
        "live": not liveness(atlas),
        "ready": not readiness(atlas),
        "problems": readiness(atlas),
        "clusters": [
            {
                "name": c.name,
                "replicas": c.replicas,
                "envoy_address": c.envoy_address,
                "group": c.group,
            }
            for c in (state.topology.clusters if state else ())
        ],
        "held": list(state.topology.held) if state else [],
        "errors": list(state.messages) if state else [],
        "warnings": list(state.warnings) if state else [],
        "leader": atlas.may_write(),
        "observability_node": atlas.settings.observability_node,
        "ca": _ca(atlas),
        "dns": {"serial": atlas.dns.serial},
        "observability": {"thanos_address": _thanos_address(atlas)},
        "publisher": {
            "generation": publisher.builds,
            "last_build_at": publisher.last_build_at,
            "last_error": publisher.last_error,
            "config_version": publisher.config_version,
            "source_version": publisher.source_version,
            "waiting_for_credentials": list(publisher.waiting),
            "pending": publisher.pending,
        },
        "nodes": _nodes(atlas),
    }


def _nodes(atlas: Observed) -> list[dict[str, Any]]:
    board = {n["node"]: n for n in atlas.board_entries()}
    result = []
    for node in sorted(set(board) | set(atlas.served_nodes())):
        entry = board.get(node) or {
            "node": node,
            "connected": False,
            "protocol": "",
            "peer": "",
            "sent": {},
            "acked": {},
            "last_nack": None,
            "last_seen": None,
            "client_certificate": None,
            "last_refusal": None,
        }
        versions = atlas.served_versions(node)
        serving = (
            {SHORT.get(t, t): v for t, v in sorted(versions.items())}
            if versions is not None
            else {}
        )
        entry["serving"] = serving
        entry["in_sync"] = bool(serving) and serving == entry["acked"]
        entry["leaf_expires"], entry["leaf_renew_by"] = _leaf_dates(atlas, node)
        result.append(entry)
    return result


@lru_cache(maxsize=65536)
def leaf_dates(cert_pem: bytes) -> tuple[datetime, datetime]:
    """A leaf's expiry and when its renewal is due, parsed once per certificate (every
    scrape asks for every node)."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    return certificate.not_valid_after_utc, renewal_due(certificate)


def _leaf_dates(atlas: Observed, node: str) -> tuple[str | None, str | None]:
    """When the node's leaf expires, and by when Atlas will have re-issued it: its renewal is
    due, and the renewal loop comes round once per refresh interval."""
    creds = atlas.publisher.credentials_of(node)
    if creds is None:
        return None, None
    expires, due = leaf_dates(creds.cert_pem)
    renew_by = due + timedelta(seconds=atlas.publisher.refresh_interval)
    return expires.isoformat(), renew_by.isoformat(timespec="seconds")


def _thanos_address(atlas: Observed) -> str:
    """Where the observability Envoy takes Thanos StoreAPI calls, as seen from this host."""
    settings = atlas.settings
    host = settings.network.observability_listen_address
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"{host}:{settings.observability_ports.thanos}"


class NodeMetrics(Collector):
    """Per-node gauges computed at scrape time from the status board, the cache and the
    credentials, so that they never go stale. They cover the nodes Atlas serves, connected
    or not, and any node connected now; a removed cluster's Envoy drops out once it is gone,
    so no alert fires forever for a cluster that no longer exists."""

    def __init__(self, atlas: Observed) -> None:
        self.atlas = atlas

    def collect(self) -> Iterator[GaugeMetricFamily]:
        atlas = self.atlas
        connected = GaugeMetricFamily(
            "atlas_xds_node_connected",
            "1 while the node's Envoy holds an ADS stream to this replica",
            labels=["node"],
        )
        in_sync = GaugeMetricFamily(
            "atlas_xds_node_in_sync",
            "1 when what the Envoy last ACKed is what this replica serves",
            labels=["node"],
        )
        expiry = GaugeMetricFamily(
            "atlas_certificate_expiry_timestamp_seconds",
            "When a certificate expires (Unix time): kind leaf (SDS), bootstrap (ADS client), ca",
            labels=["node", "kind"],
        )
        for entry in _nodes(atlas):
            node, served = entry["node"], bool(entry["serving"])
            if not served and not entry["connected"]:
                continue  # a removed cluster's Envoy, gone: nothing to alert on
            connected.add_metric([node], 1.0 if entry["connected"] else 0.0)
            if served:  # an Envoy Atlas has nothing for is neither in sync nor out of it
                in_sync.add_metric([node], 1.0 if entry["in_sync"] else 0.0)
            if entry["leaf_expires"]:
                expiry.add_metric([node, "leaf"], _timestamp(entry["leaf_expires"]))
            bootstrap = entry.get("client_certificate") or {}
            if bootstrap.get("expires"):
                expiry.add_metric([node, "bootstrap"], _timestamp(bootstrap["expires"]))
        ca = _ca(atlas)
        if ca is not None:
            expiry.add_metric(["", "ca"], _timestamp(ca["expires"]))
        synced = GaugeMetricFamily("atlas_synced", "1 once the sources were read in full")
        synced.add_metric([], 1.0 if atlas.state is not None and atlas.state.synced else 0.0)
        ready = GaugeMetricFamily("atlas_ready", "1 while /readyz answers 200")
        ready.add_metric([], 0.0 if readiness(atlas) else 1.0)
        yield from (connected, in_sync, expiry, synced, ready)


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _ca(atlas: Observed) -> dict[str, Any] | None:
    """The key ids of the trusted CAs: a node's ``client_certificate.issuer_key_id`` among the
    previous ones still depends on them (``atlas ca drop-previous`` checks it)."""
    ca = atlas.current_ca()
    if ca is None:
        return None
    return {
        "current_key_id": subject_key_id(ca.current.certificate),
        "previous_key_ids": [
            subject_key_id(Credential(pem, b"").certificate) for pem in ca.previous
        ],
        "expires": ca.current.not_after.isoformat(),
    }

"""What ``atlas status`` concludes from the replicas' ``/status`` documents and the sidecar
probes: one row per cluster, and whether everything is healthy. Pure: no network here.

A cluster is degraded when its Envoy is connected to no replica, is connected but not in sync
with what that replica serves, rejected its last update (a NACK after it), a sidecar does not
answer through the tunnel, its bootstrap certificate (installed by the operator) expires within
``expiry_warning``, or its leaf (Atlas's to renew) was not renewed when due: leaves may live
shorter than any fixed warning, and Atlas renews them with a third of their life left.
The daemons themselves are degraded when one is not ready or has rejected manifests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from atlas.model import SIDECARS_DOMAIN

__all__ = ["ClusterRow", "Probe", "Report", "build_report", "sidecar_targets"]

OBSERVABILITY_ROW = "(observability)"


@dataclass(frozen=True)
class Probe:
    """A Thanos Info call through the observability Envoy to one sidecar replica."""

    target: str
    labels: Mapping[str, str] | None = None
    method: str = ""
    error: str = ""


@dataclass
class ClusterRow:
    name: str
    replicas: int
    connected: bool
    protocol: str = ""
    replica: str = ""
    """The Atlas replica (status URL) the Envoy is connected to."""
    in_sync: bool = False
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per type: what the replica serves and what the Envoy ACKed."""
    last_nack: str = ""
    sidecars: list[Probe] = field(default_factory=list)
    leaf_expires: str = ""
    leaf_renew_by: str = ""
    bootstrap_expires: str = ""
    refused: str = ""
    """Why Atlas refuses this Envoy's stream (the refusal's reason), when it is not connected."""
    problems: list[str] = field(default_factory=list)


@dataclass
class DnsCheck:
    """What a DNS server answered for every sidecar's SRV name (``--dns``)."""

    server: str
    rcode: str = ""
    targets: list[str] = field(default_factory=list)
    error: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    healthy: bool
    replicas: dict[str, dict[str, Any]]
    """Per status URL: reachable, ready, leader, its problems and rejected manifests."""
    rows: list[ClusterRow]
    dns: DnsCheck | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "replicas": self.replicas,
            "clusters": [asdict(r) for r in self.rows],
            "dns": asdict(self.dns) if self.dns else None,
        }


def sidecar_targets(status: Mapping[str, Any]) -> list[str]:
    """Every SRV target of every cluster: ``east-0``, ``east-1``, …"""
    return [f"{c['name']}-{i}" for c in status.get("clusters", []) for i in range(c["replicas"])]


def _pick_node(node: str, documents: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The replica a node's Envoy is connected to (it holds one stream), else any entry."""
    seen: tuple[str, dict[str, Any]] | None = None
    for url, doc in documents.items():
        for entry in doc.get("nodes", []):
            if entry["node"] == node:
                if entry["connected"]:
                    return url, dict(entry)
                seen = seen or (url, dict(entry))
    return seen or ("", {})


def _expiring(value: str | None, now: datetime, warning: timedelta) -> bool:
    return bool(value) and datetime.fromisoformat(str(value)) - now < warning


def _row(
    name: str,
    replicas: int,
    node: str,
    documents: Mapping[str, Mapping[str, Any]],
    probes: Mapping[str, Probe],
    now: datetime,
    warning: timedelta,
) -> ClusterRow:
    url, entry = _pick_node(node, documents)
    serving, acked = entry.get("serving") or {}, entry.get("acked") or {}
    bootstrap = (entry.get("client_certificate") or {}).get("expires") or ""
    refusal = {} if entry.get("connected") else (entry.get("last_refusal") or {})
    if refusal.get("certificate_expires"):
        bootstrap = refusal["certificate_expires"]  # what it tries to connect with now
    row = ClusterRow(
        name=name,
        replicas=replicas,
        connected=bool(entry.get("connected")),
        protocol=entry.get("protocol") or "",
        replica=url if entry.get("connected") else "",
        in_sync=bool(entry.get("in_sync")),
        versions={
            t: {"serving": serving.get(t, ""), "acked": acked.get(t, "")} for t in sorted(serving)
        },
        last_nack=(entry.get("last_nack") or {}).get("message", ""),
        leaf_expires=entry.get("leaf_expires") or "",
        leaf_renew_by=entry.get("leaf_renew_by") or "",
        bootstrap_expires=bootstrap,
        refused=refusal.get("reason", ""),
    )
    if row.refused:
        row.problems.append(f"Envoy refused by Atlas: {refusal.get('message', row.refused)}")
    elif not row.connected:
        row.problems.append("Envoy not connected to any replica")
    elif not row.in_sync:
        row.problems.append("Envoy not in sync with what its replica serves")
    if row.last_nack and not row.in_sync:
        row.problems.append(f"last update rejected: {row.last_nack}")
    if row.leaf_renew_by and _expiring(row.leaf_renew_by, now, timedelta(0)):
        row.problems.append(
            f"leaf certificate not renewed (due by {row.leaf_renew_by}), expires {row.leaf_expires}"
        )
    if _expiring(row.bootstrap_expires, now, warning):
        row.problems.append(f"bootstrap certificate expires {row.bootstrap_expires}")
    if name != OBSERVABILITY_ROW:
        row.sidecars = [probes[f"{name}-{i}"] for i in range(replicas) if f"{name}-{i}" in probes]
        row.problems += [f"sidecar {p.target}: {p.error}" for p in row.sidecars if p.error]
    return row


def build_report(
    documents: Mapping[str, Mapping[str, Any] | None],
    probes: Sequence[Probe],
    *,
    now: datetime | None = None,
    expiry_warning: timedelta = timedelta(days=7),
    errors: Mapping[str, str] | None = None,
    dns: DnsCheck | None = None,
    judge_clusters: bool = True,
) -> Report:
    """``documents``: status URL → its ``/status`` (None when it did not answer, and
    ``errors`` says why). With no replica answering there are no rows: nothing is known."""
    now = now or datetime.now(UTC)
    reachable = {u: d for u, d in documents.items() if d is not None}
    replicas: dict[str, dict[str, Any]] = {}
    for url, doc in documents.items():
        if doc is None:
            replicas[url] = {"reachable": False, "error": (errors or {}).get(url, "")}
            continue
        replicas[url] = {
            "reachable": True,
            "ready": bool(doc.get("ready")),
            "leader": bool(doc.get("leader")),
            "problems": list(doc.get("problems", [])),
            "rejected": list(doc.get("errors", [])),
        }
    if not reachable:
        return Report(False, replicas, [], dns)
    by_target = {p.target: p for p in probes}
    first = next(iter(reachable.values()), {})
    observability = first.get("observability_node", "atlas")
    rows = [_row(OBSERVABILITY_ROW, 0, observability, reachable, by_target, now, expiry_warning)]
    rows += [
        _row(c["name"], c["replicas"], c["name"], reachable, by_target, now, expiry_warning)
        for c in first.get("clusters", [])
    ]
    if dns is not None:
        dns.problems = _dns_problems(dns, sidecar_targets(first))
    healthy = (
        all(r["reachable"] and r["ready"] and not r["rejected"] for r in replicas.values())
        and not (judge_clusters and any(row.problems for row in rows))
        and not (dns and dns.problems)
    )
    return Report(healthy, replicas, rows, dns)


def _dns_problems(dns: DnsCheck, served: Sequence[str]) -> list[str]:
    """DNS must answer every sidecar /status says is served, and nothing else: the zone is
    what Thanos Query resolves."""
    if dns.error:
        return [f"DNS {dns.server}: {dns.error}"]
    expected = sorted(f"{target}.{SIDECARS_DOMAIN}." for target in served)
    if not expected and dns.rcode in ("NOERROR", "NXDOMAIN"):
        return []
    if dns.rcode != "NOERROR":
        return [f"DNS {dns.server}: {dns.rcode} for the sidecars' SRV name"]
    if sorted(dns.targets) != expected:
        return [f"DNS {dns.server}: answers {sorted(dns.targets)}, /status serves {expected}"]
    return []

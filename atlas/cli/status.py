"""``atlas status``: is every cluster reachable? One row per cluster from the daemons'
``/status``, and a Thanos Info probe of every sidecar through the observability Envoy.

Exit code: 0 healthy, 1 degraded, 3 no replica answered (2 stays argparse's: a usage error),
so scripts can act on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import grpc
import yaml
from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from atlas import thanos
from atlas.cli.common import Formatter, parse_hostport
from atlas.cli.status_report import (
    ClusterRow,
    DnsCheck,
    Probe,
    Report,
    build_report,
    sidecar_targets,
)
from atlas.config import DEFAULT_HTTP_PORT, LOCAL_STATUS_URL
from atlas.model import SIDECARS_DOMAIN, SRV_SERVICE

__all__ = ["add_parser"]

log = logging.getLogger(__name__)

DEFAULT_URL = LOCAL_STATUS_URL
HEALTHY, DEGRADED, UNREACHABLE = 0, 1, 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="is every cluster reachable? (exit 0 healthy, 1 degraded, 3 no replica answered)",
        description="One row per cluster: its Envoy's connection and protocol, versions served "
        "and ACKed, the last NACK, a Thanos Info probe of each sidecar through the "
        "observability Envoy (with its external labels), and when its certificates expire.",
        formatter_class=Formatter,
    )
    p.add_argument(
        "--url",
        action="append",
        default=None,
        metavar="URL",
        help=f"a replica's status endpoint, repeatable (default {DEFAULT_URL})",
    )
    p.add_argument(
        "--probe-address",
        metavar="HOST:PORT",
        help="the observability Envoy's Thanos listener (default: what the daemon reports)",
    )
    p.add_argument("--no-probe", action="store_true", help="skip the sidecar probes")
    p.add_argument(
        "--only-atlas",
        action="store_true",
        help="judge Atlas alone (every replica ready, no rejected object, DNS as served), not "
        "the clusters' Envoys: what a fresh install (the chart's helm test) can check",
    )
    p.add_argument(
        "--dns",
        metavar="HOST:PORT",
        help="also ask this DNS server (Atlas's, or CoreDNS) for the sidecars' SRV name: it "
        "must answer every sidecar the replicas serve",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=["table", "json", "yaml"],
        default="table",
        help="a table for people; json or yaml (the whole report) for scripts",
    )
    p.add_argument(
        "--watch",
        nargs="?",
        const=5.0,
        type=float,
        metavar="SECONDS",
        help="repeat every SECONDS (5 when given alone) until interrupted",
    )
    p.add_argument(
        "--expiry-warning-days",
        type=float,
        default=7.0,
        help="a bootstrap certificate expiring sooner makes its cluster degraded (a leaf: "
        "when Atlas has not renewed it in time)",
    )
    p.set_defaults(func=_status)


def _fetch(url: str) -> tuple[dict[str, Any] | None, str]:
    """The replica's ``/status``, or None and why not, in the operator's words."""
    if "://" not in url:
        return None, "not a URL (give http://HOST:PORT/status)"
    if not url.rstrip("/").endswith("/status"):
        url = url.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        return None, f"HTTP {err.code} {err.reason}"
    except urllib.error.URLError as err:
        reason = err.reason
        text = getattr(reason, "strerror", None) or str(reason)
        return None, str(text).lower()
    except (OSError, ValueError) as err:
        return None, getattr(err, "strerror", None) or str(err) or type(err).__name__
    try:
        document = json.loads(body)
    except ValueError:
        return None, f"not JSON (is this Atlas's HTTP port?): {body[:40]!r}"
    if not isinstance(document, dict) or "nodes" not in document:
        return None, "JSON, but not Atlas's /status"
    return document, ""


def _probe(address: str, target: str) -> Probe:
    port = address.rpartition(":")[2]
    authority = f"{target}.{SIDECARS_DOMAIN}.:{port}"
    try:
        labels, method = thanos.probe(address, authority, timeout=3.0)
    except grpc.RpcError as err:
        return Probe(target, error=f"{err.code().name}: {err.details()}")
    return Probe(target, labels=labels, method=method)


def collect(args: argparse.Namespace) -> Report:
    urls = args.url or [DEFAULT_URL]
    fetched = {url: _fetch(url) for url in urls}
    documents = {url: doc for url, (doc, _) in fetched.items()}
    for url, (_, why) in fetched.items():
        log.debug("%s: %s", url, why or "answered")
    first = next((d for d in documents.values() if d is not None), None)
    probes: list[Probe] = []
    if first is not None and not args.no_probe:
        address = args.probe_address or first.get("observability", {}).get("thanos_address")
        targets = sidecar_targets(first)
        if address and targets:
            with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
                probes = list(pool.map(lambda t: _probe(address, t), targets))
    warning = timedelta(days=args.expiry_warning_days)
    errors = {url: why for url, (doc, why) in fetched.items() if doc is None}
    dns = _resolve(*parse_hostport(args.dns, "--dns")) if args.dns else None
    return build_report(
        documents,
        probes,
        expiry_warning=warning,
        errors=errors,
        dns=dns,
        judge_clusters=not args.only_atlas,
    )


def _resolve(host: str, port: int) -> DnsCheck:
    """The SRV answer Thanos Query gets for every sidecar (``_grpc._tcp.sidecars...``)."""
    server = f"{host}:{port}"
    query = DNSRecord.question(f"_{SRV_SERVICE}._tcp.{SIDECARS_DOMAIN}.", "SRV")
    try:
        answer = DNSRecord.parse(query.send(host, port, timeout=3))
    except (OSError, DNSError) as err:
        return DnsCheck(server, error=getattr(err, "strerror", None) or str(err) or "no answer")
    targets = [str(rr.rdata.target) for rr in answer.rr if rr.rtype == QTYPE.SRV]
    return DnsCheck(server, rcode=RCODE.get(answer.header.rcode), targets=targets)


def _day(iso: str) -> str:
    return iso[:10] if iso else "-"


def render_table(report: Report) -> str:
    lines = []
    for url, replica in report.replicas.items():
        if not replica["reachable"]:
            lines.append(f"replica {url}: UNREACHABLE: {replica.get('error') or 'no answer'}")
            continue
        state = "ready" if replica["ready"] else "NOT READY"
        role = "leader" if replica["leader"] else "follower"
        lines.append(f"replica {url}: {state}, {role}")
        lines += [f"  problem: {p}" for p in replica["problems"]]
        lines += [f"  rejected: {e}" for e in replica["rejected"]]
    if not any(r["reachable"] for r in report.replicas.values()):
        lines.append(
            "no Atlas replica answered: check --url (each replica's HTTP port, "
            f"{DEFAULT_HTTP_PORT})"
        )
        return "\n".join(lines) + "\n"
    header = ("CLUSTER", "ENVOY", "CONFIG", "SIDECARS", "LEAF", "BOOTSTRAP")
    table = [header]
    for row in report.rows:
        table.append(
            (
                row.name,
                _envoy_state(row),
                _config_state(row),
                _sidecars(row),
                _day(row.leaf_expires),
                _day(row.bootstrap_expires),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    for row in report.rows:
        lines += [f"{row.name}: {p}" for p in row.problems]
    if report.dns is not None:
        dns = report.dns
        lines.append(
            f"dns {dns.server}: {dns.error or dns.rcode}, {len(dns.targets)} sidecar target(s)"
        )
        lines += [f"dns: {p}" for p in dns.problems]
    lines.append("healthy" if report.healthy else "DEGRADED")
    return "\n".join(lines) + "\n"


def _envoy_state(row: ClusterRow) -> str:
    if row.connected:
        return f"connected ({row.protocol})"
    if row.refused:
        return f"REFUSED ({row.refused})"
    return "DISCONNECTED"


def _config_state(row: ClusterRow) -> str:
    """Only a connected Envoy is in sync or not; a disconnected one keeps what it had."""
    if not row.connected:
        return "-"
    if row.in_sync:
        return "in sync"
    return "NACK" if row.last_nack else "OUT OF SYNC"


def _sidecars(row: ClusterRow) -> str:
    shown = []
    for p in row.sidecars:
        labels = ",".join(f"{k}={v}" for k, v in sorted((p.labels or {}).items()))
        shown.append(f"{p.target} {labels if not p.error else 'UNREACHABLE'}")
    return ", ".join(shown) or "-"


def _print(report: Report, output: str) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    elif output == "yaml":
        sys.stdout.write(yaml.safe_dump(report.as_dict(), sort_keys=False))
    else:
        sys.stdout.write(render_table(report))
    sys.stdout.flush()


def _code(report: Report) -> int:
    if not any(r["reachable"] for r in report.replicas.values()):
        return UNREACHABLE
    return HEALTHY if report.healthy else DEGRADED


def _status(args: argparse.Namespace) -> int:
    """Once, or with ``--watch`` until Ctrl-C, which ends it with the last report's code."""
    code: int | None = None
    try:
        while True:
            report = collect(args)
            _print(report, args.output)
            code = _code(report)
            if args.watch is None:
                return code
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return code if code is not None else 130

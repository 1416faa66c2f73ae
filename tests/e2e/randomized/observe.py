"""What a randomized run sees, continuously and with the time of each observation:

* ``Prober``: the Go ``thanos-query-watch`` (Thanos's own resolution and dial, one
  connection per target), one Info call per target every 100 ms and one SRV resolution per
  name every 250 ms;
* ``AlertSenders``: what each downstream Prometheus does, an alert POSTed every 100 ms to its
  Envoy's relay with the Host of the Service ``alertmanager-0``;
* ``no_cluster_flags``: the Envoys' access logs, for requests routed to a cluster their
  Envoy did not have (response flag NC): make-before-break broken within one proxy.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from tests.e2e.network import AtlasNetwork
from tests.e2e.randomized.model import all_targets, srv_names
from tests.e2e.randomized.network import ALERTMANAGER_REPLICA_HOST
from tests.gotools import go_tool


@dataclass(frozen=True)
class Call:
    t: float
    target: str
    code: str
    """gRPC status code name (``OK``, ``Unavailable``, ...)."""
    labels: dict[str, str]
    error: str


@dataclass(frozen=True)
class Resolution:
    t: float
    name: str
    rcode: str
    targets: frozenset[str]
    error: str


@dataclass(frozen=True)
class Alert:
    t: float
    cluster: str
    status: int
    """HTTP status, 0 for a connection that failed."""
    error: str = ""


@dataclass
class Observations:
    """Everything seen so far, in arrival order; a checker takes what is new."""

    calls: list[Call] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Prober:
    def __init__(self, net: AtlasNetwork, seen: Observations, log: Path) -> None:
        argv = [
            go_tool("thanos-query-watch"),
            "-dns",
            f"{net.atlas_ip}:{net.dns_port}",
            "-names",
            ",".join(srv_names()),
            "-targets",
            ",".join(all_targets()),
            "-port",
            str(net.obs_ports["thanos"]),
        ]
        self.seen = seen
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            item = json.loads(text)
            with self.seen.lock:
                if item["kind"] == "call":
                    self.seen.calls.append(
                        Call(
                            item["t"],
                            item["target"],
                            item.get("code", ""),
                            item.get("labels") or {},
                            item.get("error", ""),
                        )
                    )
                else:
                    self.seen.resolutions.append(
                        Resolution(
                            item["t"],
                            item["name"],
                            item.get("rcode", ""),
                            frozenset(item.get("targets") or ()),
                            item.get("error", ""),
                        )
                    )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


class AlertSenders:
    """One thread per cluster; ``where`` says where its Envoy's relay is now (it moves with
    the cluster's address), or None while it has no Envoy."""

    def __init__(
        self,
        clusters: tuple[str, ...],
        where: Callable[[str], tuple[str, int] | None],
        seen: Observations,
        *,
        every: float = 0.1,
    ) -> None:
        self.where, self.seen, self.every = where, seen, every
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(c,), daemon=True) for c in clusters
        ]
        for thread in self._threads:
            thread.start()

    def _send(self, cluster: str) -> None:
        seq = 0
        while not self._stop.wait(self.every):
            relay = self.where(cluster)
            if relay is None:
                continue
            seq += 1
            body = json.dumps(
                [{"labels": {"alertname": "RandomRun", "cluster": cluster, "seq": str(seq)}}]
            ).encode()
            conn = HTTPConnection(*relay, timeout=2)
            try:
                conn.request(
                    "POST",
                    "/api/v2/alerts",
                    body=body,
                    headers={"Host": ALERTMANAGER_REPLICA_HOST, "Content-Type": "application/json"},
                )
                status = conn.getresponse().status
                alert = Alert(time.time(), cluster, status)
            except OSError as err:
                alert = Alert(time.time(), cluster, 0, f"{type(err).__name__}: {err}")
            finally:
                conn.close()
            with self.seen.lock:
                self.seen.alerts.append(alert)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)


def no_cluster_flags(logs: list[Path]) -> list[dict[str, Any]]:
    """Access-log lines of requests routed to a cluster the Envoy did not have (``NC``)."""
    found = []
    for log in logs:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line.startswith("{") or '"flags"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if "NC" in str(entry.get("flags", "")).split(","):
                found.append(entry)
    return found

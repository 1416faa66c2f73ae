"""The last good definition of every cluster, kept across restarts.

While a cluster's manifest is invalid, its last good definition stays in force
(``LastGood``). Without a memory, a restart forgets it: the cluster could then only be held
(not routed) until the manifest is fixed. With one, the restarted daemon serves exactly what
it served before.

* ``FileMemory``: directory mode, a file of Atlas's own in the state directory, written
  atomically on every change;
* ``SecretMemory``: Kubernetes, the Secret ``atlas-last-good``, read from the watch cache
  once Secrets are listed, and written by the leader only (the reconciler writes
  ``pending``): every replica, restarted or new, starts from what the others served.

A memory that cannot be read is reported once and ignored, never trusted in part.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from atlas.model import DownstreamCluster, Upstream

__all__ = ["FileMemory", "Memory", "SecretMemory", "decode", "encode"]

log = logging.getLogger(__name__)

VERSION = 1


class Memory(Protocol):
    def load(self) -> tuple[dict[str, DownstreamCluster], dict[str, str]]:
        """The clusters last served and where each came from (empty when there is none)."""
        ...

    def save(
        self, clusters: Mapping[str, DownstreamCluster], origins: Mapping[str, str]
    ) -> None: ...


def encode(clusters: Mapping[str, DownstreamCluster], origins: Mapping[str, str]) -> str:
    entries = {
        name: {"origin": origins.get(name, ""), "cluster": _fields(c)}
        for name, c in sorted(clusters.items())
    }
    return json.dumps({"version": VERSION, "clusters": entries}, indent=1, sort_keys=True)


def decode(text: str) -> tuple[dict[str, DownstreamCluster], dict[str, str]]:
    """Raises ValueError (or KeyError, TypeError) for anything but a whole, current memory."""
    data = json.loads(text)
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r}")
    entries: Mapping[str, Any] = data["clusters"]
    clusters = {name: _cluster(e["cluster"]) for name, e in entries.items()}
    origins = {name: str(e["origin"]) for name, e in entries.items()}
    return clusters, origins


def _decoded(text: str | None, where: str) -> tuple[dict[str, DownstreamCluster], dict[str, str]]:
    if text is None:
        return {}, {}
    try:
        return decode(text)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("%s: not used, it cannot be read (%s)", where, err)
        return {}, {}


class FileMemory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: str | None = None

    def load(self) -> tuple[dict[str, DownstreamCluster], dict[str, str]]:
        try:
            text: str | None = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except OSError as err:
            log.warning("%s: not used, it cannot be read (%s)", self.path, err)
            text = None
        return _decoded(text, str(self.path))

    def save(self, clusters: Mapping[str, DownstreamCluster], origins: Mapping[str, str]) -> None:
        text = encode(clusters, origins)
        if text == self._written:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as err:
            log.warning("%s: cannot be written (%s); a restart would forget it", self.path, err)
            return
        self._written = text


class SecretMemory:
    def __init__(self, read: Callable[[], str | None], name: str) -> None:
        self.read = read
        self.name = name
        """The Secret's name, for messages."""
        """The Secret's text from the watch cache (None: no such Secret)."""
        self.pending: str | None = None
        """What the leader should write (the reconciler compares it with the Secret)."""

    def load(self) -> tuple[dict[str, DownstreamCluster], dict[str, str]]:
        return _decoded(self.read(), f"Secret {self.name}")

    def save(self, clusters: Mapping[str, DownstreamCluster], origins: Mapping[str, str]) -> None:
        self.pending = encode(clusters, origins)


def _fields(c: DownstreamCluster) -> dict[str, Any]:
    return {
        "name": c.name,
        "envoy_address": c.envoy_address,
        "replicas": c.replicas,
        "thanos": [c.thanos.host, c.thanos.port],
        "thanos_replica_template": c.thanos_replica_template,
        "prometheus": [c.prometheus.host, c.prometheus.port],
        "alertmanager": [c.alertmanager.host, c.alertmanager.port],
        "group": c.group,
        "srv_services": list(c.srv_services),
    }


def _cluster(data: Mapping[str, Any]) -> DownstreamCluster:
    return DownstreamCluster(
        name=str(data["name"]),
        envoy_address=str(data["envoy_address"]),
        replicas=int(data["replicas"]),
        thanos=Upstream(str(data["thanos"][0]), int(data["thanos"][1])),
        thanos_replica_template=str(data["thanos_replica_template"]),
        prometheus=Upstream(str(data["prometheus"][0]), int(data["prometheus"][1])),
        alertmanager=Upstream(str(data["alertmanager"][0]), int(data["alertmanager"][1])),
        group=None if data["group"] is None else str(data["group"]),
        srv_services=tuple(str(s) for s in data["srv_services"]),
    )

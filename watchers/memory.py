"""The last good definition of every cluster, kept on disk across restarts.

While a cluster's manifest is invalid, its last good definition stays in force
(``LastGood``). Without a memory, a restart forgets it: the cluster could then only be held
(not routed) until the manifest is fixed. With one, the restarted daemon serves exactly what
it served before. The file is Atlas's own (in the state directory), written atomically on
every change; a file that cannot be read is reported once and ignored, never trusted in part.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atlas.model import DownstreamCluster, Upstream

__all__ = ["Memory"]

log = logging.getLogger(__name__)

VERSION = 1


class Memory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: str | None = None

    def load(self) -> tuple[dict[str, DownstreamCluster], dict[str, str]]:
        """The clusters last served and where each came from (empty when there is none)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            entries: Mapping[str, Any] = data["clusters"]
            clusters = {name: _cluster(e["cluster"]) for name, e in entries.items()}
            origins = {name: str(e["origin"]) for name, e in entries.items()}
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s: not used, it cannot be read (%s)", self.path, err)
            return {}, {}
        self._written = None
        return clusters, origins

    def save(self, clusters: Mapping[str, DownstreamCluster], origins: Mapping[str, str]) -> None:
        entries = {
            name: {"origin": origins.get(name, ""), "cluster": _fields(c)}
            for name, c in sorted(clusters.items())
        }
        text = json.dumps({"version": VERSION, "clusters": entries}, indent=1, sort_keys=True)
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

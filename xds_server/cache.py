"""Per-node snapshot cache, and the narrow interface the ADS streams see of it.

``ConfigWatcher`` is everything a stream needs: the current snapshot of a node and a way to be
told when it changes. ``SnapshotCache`` implements it; setting an unchanged snapshot notifies
nobody, so only nodes whose resources changed are pushed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from xds_server.snapshot import Snapshot

__all__ = ["ConfigWatcher", "SnapshotCache"]

log = logging.getLogger(__name__)

Unsubscribe = Callable[[], None]


class ConfigWatcher(Protocol):
    def snapshot(self, node: str) -> Snapshot | None: ...

    def subscribe(self, node: str, notify: Callable[[], None]) -> Unsubscribe:
        """Call ``notify`` (on the loop) whenever ``node``'s snapshot changes."""
        ...


class SnapshotCache:
    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, set[Callable[[], None]]] = {}

    def snapshot(self, node: str) -> Snapshot | None:
        return self._snapshots.get(node)

    def nodes(self) -> tuple[str, ...]:
        return tuple(sorted(self._snapshots))

    def subscribe(self, node: str, notify: Callable[[], None]) -> Unsubscribe:
        self._watchers.setdefault(node, set()).add(notify)

        def unsubscribe() -> None:
            watchers = self._watchers.get(node)
            if watchers is not None:
                watchers.discard(notify)
                if not watchers:
                    del self._watchers[node]

        return unsubscribe

    def set_snapshot(self, node: str, snapshot: Snapshot) -> bool:
        """Store and notify; returns False (and notifies nobody) when nothing changed."""
        if self._snapshots.get(node) == snapshot:
            return False
        self._snapshots[node] = snapshot
        self._notify(node)
        return True

    def clear(self, node: str) -> None:
        if self._snapshots.pop(node, None) is not None:
            self._notify(node)

    def replace_all(self, snapshots: Mapping[str, Snapshot]) -> tuple[str, ...]:
        """Make the cache hold exactly ``snapshots``; returns the nodes that changed."""
        changed = [n for n, s in snapshots.items() if self.set_snapshot(n, s)]
        for node in set(self._snapshots) - set(snapshots):
            self.clear(node)
            changed.append(node)
        return tuple(sorted(changed))

    def apply(
        self, snapshots: Mapping[str, Snapshot], changed: Iterable[str], removed: Iterable[str]
    ) -> tuple[str, ...]:
        """``replace_all`` when the caller already knows what changed (an incremental build):
        only those nodes are looked at, not all 10,000."""
        done = [n for n in changed if self.set_snapshot(n, snapshots[n])]
        for node in removed:
            if node in self._snapshots:
                self.clear(node)
                done.append(node)
        return tuple(sorted(done))

    def _notify(self, node: str) -> None:
        for notify in list(self._watchers.get(node, ())):
            notify()

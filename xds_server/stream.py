"""One ADS stream's state: what each type subscribed to, sent, and had ACKed.

Shared by state-of-the-world (``sotw.py``) and delta (``delta.py``), which only translate
their wire messages into ``Request`` values and ``Push`` values into responses.

* ACK vs NACK is told by ``error_detail``: a NACK leaves the accepted set as it was.
* A request whose nonce is not the latest one sent for its type is stale and ignored.
* One response per type is in flight at a time; its ACK (or NACK) lets the next one go.
* What was NACKed is not sent again until the snapshot changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import is_not
from typing import Any

from xds_server import metrics
from xds_server.planner import READS, desired
from xds_server.resources import Resource, content_version
from xds_server.snapshot import Snapshot
from xds_server.status import StatusBoard
from xds_server.types import ADS_ORDER, PARTIAL_SOTW_TYPES, SHORT, WILDCARD_TYPES

__all__ = ["Push", "Request", "StreamState", "nack_message"]

log = logging.getLogger(__name__)


_ACK_LATENCY = {t: metrics.ACK_LATENCY.labels(SHORT[t]) for t in ADS_ORDER}
"""Looked up once: every ACK of 10,000 streams observes one."""

NACK_TEXT = 2000
"""Characters of a NACK's message kept for the log, the status and ``atlas status``: Envoy's
messages are a few hundred; a client could send megabytes."""


def nack_message(error_detail: Any, present: bool) -> str | None:
    """Envoy's rejection text from ``error_detail`` (a google.rpc.Status); None for an ACK."""
    if not present:
        return None
    text = str(error_detail.message) or f"code {error_detail.code}"
    return text if len(text) <= NACK_TEXT else text[:NACK_TEXT] + " …(truncated)"


@dataclass(frozen=True)
class Request:
    """A discovery request reduced to what the state machine needs."""

    type_url: str
    nonce: str = ""
    error: str | None = None
    """Envoy's message when ``error_detail`` is set (a NACK)."""
    names: tuple[str, ...] | None = None
    """SotW: the full list of names (empty = wildcard for wildcard types). Delta: None."""
    version_info: str = ""
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_versions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Push:
    type_url: str
    version: str
    nonce: str
    target: Mapping[str, Resource]
    """What the client holds once it ACKs."""
    updated: tuple[Resource, ...]
    """What the client does not hold at this version, in name order: what delta sends, and
    what state of the world sends of ``PARTIAL_SOTW_TYPES`` (empty for the other types)."""
    removed: tuple[str, ...]


@dataclass
class _TypeState:
    requested: bool = False
    names: set[str] | None = None
    acked: Mapping[str, Resource] = field(default_factory=dict)
    """Often the snapshot's own (read-only) mapping: replaced, never changed in place."""
    acked_version: str = ""
    inflight: Mapping[str, Resource] | None = None
    nonce: str = ""
    sent_version: str = ""
    sent_at: float = 0.0
    reported: Request | None = None
    """An initial request that came before any snapshot: adopted when the first one arrives."""
    absent: set[str] = field(default_factory=set)
    """Delta: names subscribed to that do not exist, already answered as removed."""
    settled: tuple[str | int, ...] | None = None
    """What the last look found nothing to send for (``StreamState._inputs``): while the
    inputs are the same, the next look would find the same, and is skipped."""


class StreamState:
    def __init__(self, node: str, board: StatusBoard, protocol: str) -> None:
        self.node = node
        self.board = board
        self.protocol = protocol
        self._types = {t: _TypeState() for t in ADS_ORDER}
        self._reads = {t: tuple(self._types[r] for r in READS[t]) for t in ADS_ORDER}
        """Per type, the states whose ACKed versions ``_inputs`` reads (found once)."""
        self._nonces = 0
        self._generation = 0
        """Counts subscription changes: part of what ``pushes`` depends on."""
        self._pushed: dict[str, Any] = {}
        """Per type, this node's push counter, looked up on the first push: a reconnecting
        Envoy that holds the current versions is sent nothing, and a storm of 10,000 of
        them should not pay for 40,000 label lookups."""

    def _acked(self) -> dict[str, Mapping[str, Resource]]:
        return {t: s.acked for t, s in self._types.items()}

    def receive(self, req: Request, snapshot: Snapshot | None) -> None:
        state = self._types.get(req.type_url)
        if state is None:
            log.debug("node %s asked for unsupported type %s", self.node, req.type_url)
            return
        if req.nonce:
            if req.nonce != state.nonce:
                log.debug("node %s: stale nonce %s for %s", self.node, req.nonce, req.type_url)
                return
            self._feedback(req, state)
        elif snapshot is not None:
            self._adopt_client_state(req, state, snapshot)
        else:
            state.reported = req
        self._subscribe(req, state)

    def _feedback(self, req: Request, state: _TypeState) -> None:
        if state.inflight is None:
            return
        status = self.board.node(self.node)
        short = SHORT[req.type_url]
        if req.error is not None:
            metrics.NACKS.labels(self.node, short).inc()
            self.board.nack(self.node, req.type_url, state.sent_version, req.error)
            log.warning(
                "node %s rejected %s version %s: %s",
                self.node,
                short,
                state.sent_version,
                req.error,
            )
        else:
            state.acked = state.inflight
            state.acked_version = state.sent_version
            status.acked[req.type_url] = state.sent_version
            _ACK_LATENCY[req.type_url].observe(time.monotonic() - state.sent_at)
        state.inflight = None

    def _adopt_client_state(self, req: Request, state: _TypeState, snapshot: Snapshot) -> None:
        """A reconnecting Envoy tells what it has: what matches is not sent again."""
        ours = snapshot.of(req.type_url)
        if req.names is not None:  # SotW: one version for the whole set
            if not req.version_info:
                return
            # Shown in status even when it is not ours: it is what the proxy runs.
            self.board.node(self.node).acked[req.type_url] = req.version_info
            names = None if not req.names or "*" in req.names else set(req.names)
            if names is None or names.issuperset(ours):
                # The snapshot's own mapping and version: the planner can tell by identity
                # that nothing else is held (30,000 upstreams at the observability node).
                have, version = ours, snapshot.versions[req.type_url]
            else:
                have = {n: r for n, r in ours.items() if n in names}
                version = content_version(have.values())
            if req.version_info == version:
                state.acked = have
                state.acked_version = state.sent_version = req.version_info
            return
        if not req.initial_versions:
            return
        acked = dict(state.acked)
        for name, version in req.initial_versions:  # delta: a version per resource
            mine = ours.get(name)
            acked[name] = (
                mine
                if mine is not None and mine.version == version
                else Resource(req.type_url, name, b"", version)
            )
        state.acked = acked
        # Same hash as a type version computed from our own resources, so it is comparable.
        state.acked_version = content_version(state.acked.values())
        self.board.node(self.node).acked[req.type_url] = state.acked_version

    def _subscribe(self, req: Request, state: _TypeState) -> None:
        first = not state.requested
        state.requested = True
        if req.names is not None:
            wildcard = req.type_url in WILDCARD_TYPES and (not req.names or "*" in req.names)
            names = None if wildcard else set(req.names)
            if first or names != state.names:  # an ACK repeats the names: nothing changed
                self._generation += 1
                state.names = names
            return
        if first or req.subscribe or req.unsubscribe:
            self._generation += 1
        subscribe = set(req.subscribe)
        if "*" in subscribe or (first and req.type_url in WILDCARD_TYPES and not subscribe):
            state.names = None
        elif first:
            state.names = subscribe
        elif state.names is not None:
            state.names |= subscribe
        unsubscribe = set(req.unsubscribe)
        if "*" in unsubscribe and state.names is None:
            state.names = set()
        elif state.names is not None:
            state.names -= unsubscribe
        if unsubscribe & state.acked.keys():
            state.acked = {n: r for n, r in state.acked.items() if n not in unsubscribe}

    def _newly_absent(self, state: _TypeState, resources: Mapping[str, Resource]) -> set[str]:
        """Delta: subscribed names that do not exist and were not yet answered. The
        incremental protocol says so with ``removed_resources``, so the client need not wait
        for a timeout; each is answered once (no loop), and again only if it comes and goes."""
        if self.protocol != "delta" or state.names is None:
            return set()
        state.absent &= state.names  # unsubscribed: forget; subscribed again: answer again
        state.absent -= resources.keys()
        missing = state.names - resources.keys() - state.absent - state.acked.keys()
        state.absent |= missing
        return missing

    def _inputs(self, snapshot: Snapshot, type_url: str) -> tuple[str | int, ...]:
        """Everything ``desired`` and the absent-name check read for ``type_url``: its set in
        the snapshot (by version: equal versions are equal content), the subscriptions, and
        what was ACKed of the types it depends on (``planner.READS``). Looked at 80,000 times
        in a trust-bundle change at 10,000 streams, hence no generator."""
        acked = [s.acked_version for s in self._reads[type_url]]
        return (snapshot.versions.get(type_url, ""), self._generation, *acked)

    def pushes(self, snapshot: Snapshot | None) -> list[Push]:
        """Responses to send now, in ADS order.

        Called on every request and every snapshot change. An ACK of one type leaves the
        others as they were, so a type whose inputs did not change since it was last found
        settled is skipped: at 10,000 streams, a trust-bundle change is 10,000 ACKs.
        """
        if snapshot is None:
            return []
        result: list[Push] = []
        for type_url in ADS_ORDER:
            state = self._types[type_url]
            if state.reported is not None:
                self._adopt_client_state(state.reported, state, snapshot)
                state.reported = None
            if not state.requested or state.inflight is not None:
                continue
            inputs = self._inputs(snapshot, type_url)
            if state.settled == inputs:
                continue
            target = desired(snapshot, type_url, state.names, self._acked())
            if target is snapshot.of(type_url):  # the whole set, as it is
                version = snapshot.versions[type_url]
            else:
                version = content_version(target.values())
            missing = self._newly_absent(state, snapshot.of(type_url))
            if version == state.sent_version and not missing:
                state.settled = inputs
                continue
            updated: tuple[Resource, ...] = ()
            removed: tuple[str, ...] = ()
            if self.protocol == "delta":
                updated = _updated(target, state.acked)
                removed = tuple(sorted((state.acked.keys() - target.keys()) | missing))
            elif type_url in PARTIAL_SOTW_TYPES:  # else state of the world sends ``target`` whole
                updated = _updated(target, state.acked)
            if self.protocol == "delta" and not updated and not removed:
                state.sent_version = state.acked_version = version  # client already has it
                state.acked = target
                continue
            self._nonces += 1
            state.nonce = f"{self._nonces}"
            state.inflight = target
            state.sent_version = version
            state.sent_at = time.monotonic()
            self.board.node(self.node).sent[type_url] = version
            pushed = self._pushed.get(type_url)
            if pushed is None:
                pushed = self._pushed[type_url] = metrics.PUSHES.labels(self.node, SHORT[type_url])
            pushed.inc()
            result.append(Push(type_url, version, state.nonce, target, updated, removed))
        return result


def _updated(target: Mapping[str, Resource], acked: Mapping[str, Resource]) -> tuple[Resource, ...]:
    """Delta: the resources of ``target`` the client does not hold at their version, in
    name order. Found by identity first, in C: a one-cluster change among the observability
    node's 30,000 upstreams sorts three, not 30,000."""
    maybe = compress(target.items(), map(is_not, target.values(), map(acked.get, target)))
    changed = sorted(
        (n, r) for n, r in maybe if (held := acked.get(n)) is None or held.version != r.version
    )
    return tuple(r for _, r in changed)

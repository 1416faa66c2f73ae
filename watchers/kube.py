"""Services and Secrets of the Atlas namespace, from the Kubernetes API.

Three nested loops per kind, as kopf does it:

* ``_forever``   reconnects for ever, with jittered exponential backoff; deliberately trivial;
* ``_list_then_watch`` lists, hands over the complete state, then watches from the list's
  resourceVersion; a 410 Gone returns here so that the state is listed again and *replaced*
  (objects deleted meanwhile disappear, nothing else does: no spurious deletions);
* ``_watch_once`` reads one watch stream (bookmarks only advance the resourceVersion).

The blocking client runs in one thread per kind; every change is handed to the asyncio loop,
which owns all state and publishes a new SourceState.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from atlas.config import DEFAULT_NAMESPACE, DEFAULT_OBSERVABILITY_NODE, WatchSettings
from atlas.errors import ResourceExpired, WatchError
from atlas.instance import InstanceNames
from atlas.kube import Kube, KubeError, Outage, status_of
from atlas.manifests import ParseMemo, parse_selector, parse_services
from atlas.model import LAST_GOOD_KEY, Topology
from atlas.names import is_ip
from atlas.supervisor import run_thread
from watchers.memory import SecretMemory
from watchers.source import LastGood, Publish, SourceState

__all__ = ["KubeSource"]

log = logging.getLogger(__name__)

Objects = dict[str, dict[str, Any]]


class _KindWatch:
    """Lists and watches one kind in one namespace, in a thread."""

    def __init__(
        self,
        kube: Kube,
        kind: str,
        namespace: str,
        listed: Callable[[Objects], None],
        changed: Callable[[str, dict[str, Any]], None],
        settings: WatchSettings,
        stop: threading.Event,
        stale: Callable[[], None] = lambda: None,
    ) -> None:
        self.kube, self.kind, self.namespace = kube, kind, namespace
        self.listed, self.changed, self.stale = listed, changed, stale
        self.settings, self.stop = settings, stop
        self.list_fn = (
            kube.core.list_namespaced_service
            if kind == "Service"
            else kube.core.list_namespaced_secret
        )
        self.relists = 0

    def forever(self) -> None:
        delay = self.settings.backoff_initial
        outage = Outage(f"{self.kind} watch", log)
        while not self.stop.is_set():
            try:
                self._list_then_watch(outage)
                delay = self.settings.backoff_initial
            except (WatchError, KubeError) as err:
                if self.stop.is_set():
                    return  # stopped while the stream broke: not an outage
                self.stale()  # until listed again, what is cached may miss changes
                outage.failed(err)
                self.stop.wait(delay * (1 + random.random() * self.settings.jitter))
                delay = min(delay * 2, self.settings.backoff_max)

    def _list(self) -> tuple[Objects, str]:
        body = self.kube.call(f"list {self.kind}s", self.list_fn, self.namespace)
        items = {
            item["metadata"]["name"]: _with_kind(item, self.kind) for item in body.get("items", [])
        }
        return items, str(body.get("metadata", {}).get("resourceVersion", ""))

    def _list_then_watch(self, outage: Outage) -> None:
        items, version = self._list()
        outage.ok()
        self.relists += 1
        self.listed(items)
        while not self.stop.is_set():
            try:
                version = self._watch_once(version)
            except ResourceExpired:
                log.info("%s watch expired (410 Gone): listing again", self.kind)
                return

    def _watch_once(self, version: str) -> str:
        w = watch.Watch()
        try:
            for event in w.stream(
                self.list_fn,
                self.namespace,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.settings.watch_timeout,
            ):
                if self.stop.is_set():
                    break
                # raw_object is the JSON as sent (the client's own ERROR handling needs its
                # deserializing mode: with deserialize=False it fails on a 410 event).
                kind, obj = event.get("type"), event.get("raw_object") or {}
                new_version = obj.get("metadata", {}).get("resourceVersion")
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise ResourceExpired(obj.get("message", "410 Gone"))
                    raise WatchError(f"{self.kind} watch error: {obj.get('message')}")
                if new_version:
                    version = new_version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.changed(kind, _with_kind(obj, self.kind))
        except ApiException as err:
            if status_of(err) == 410:
                raise ResourceExpired(str(err.reason)) from None
            raise WatchError(f"{self.kind} watch: {status_of(err)} {err.reason}") from None
        except (ResourceExpired, WatchError):
            raise
        except Exception as err:  # transport failures: the outer loop reconnects
            raise WatchError(f"{self.kind} watch broke: {type(err).__name__}") from None
        finally:
            w.stop()
        return version


def _with_kind(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    obj.setdefault("kind", kind)
    return obj


class KubeSource:
    """A Source over the API: publishes a SourceState after each change, synced after the
    first complete list of both Services and Secrets."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        alertmanager_selector: str = "",
        envoy_selector: str = "",
        reserved: tuple[str, ...] = (DEFAULT_OBSERVABILITY_NODE,),
        last_good: str = InstanceNames().last_good,
        settings: WatchSettings | None = None,
        on_thread: Callable[[threading.Thread], None] = lambda thread: None,
    ) -> None:
        self.kube = kube
        self.on_thread = on_thread
        """Told of each watch thread started, so that a dead one can be noticed (liveness)."""
        self.namespace = namespace
        self.alertmanager_selector = parse_selector(alertmanager_selector)
        self.envoy_selector = parse_selector(envoy_selector)
        self.reserved = reserved
        self.settings = settings or WatchSettings()
        self.services: Objects = {}
        self.secrets: Objects = {}
        self._listed: set[str] = set()
        self._fresh: set[str] = set()
        """Kinds listed since their watch last failed: their cache misses nothing."""
        self.last_good_secret = last_good
        self.memory = SecretMemory(self._memory_text, last_good)
        """Every cluster's last good definition, in the Secret the leader keeps."""
        self._last_good = LastGood(self.memory)
        self._memo = ParseMemo()
        """Unchanged objects are not parsed again (0.4 s per change at 10,000 Services)."""
        self._stop = threading.Event()
        self._watches: list[_KindWatch] = []
        self.threads: list[threading.Thread] = []
        """The current run's watch threads."""
        self.secret_listeners: list[Callable[[], None]] = []
        """Called on the loop after Secrets change (PKI reloads, CA-rotation requests)."""

    def secret(self, name: str) -> dict[str, Any] | None:
        return self.secrets.get(name)

    def _memory_text(self) -> str | None:
        data = (self.secrets.get(self.last_good_secret) or {}).get("data") or {}
        encoded = data.get(LAST_GOOD_KEY)
        if not isinstance(encoded, str):
            return None
        try:
            return base64.b64decode(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            return "(not base64 text)"

    @property
    def version(self) -> str:
        """What this replica has read: a digest of every Service's and Secret's name and
        resourceVersion. Replicas whose caches hold the same objects show the same."""
        h = hashlib.sha256()
        for kind, objects in (("Service", self.services), ("Secret", self.secrets)):
            for name in sorted(objects):
                rv = objects[name].get("metadata", {}).get("resourceVersion", "")
                h.update(f"{kind}/{name}@{rv}\n".encode())
        return h.hexdigest()[:16]

    @property
    def secrets_listed(self) -> bool:
        return "Secret" in self._listed

    @property
    def fresh(self) -> bool:
        """Both kinds were listed since their watches last failed. A leader writes only then
        (client-go's HasSynced, after every reconnect too): from a cache that missed changes
        during an API outage it would, say, delete a values Secret of a cluster it has not
        seen added."""
        return {"Service", "Secret"} <= self._fresh

    async def run(self, publish: Publish) -> None:
        loop = asyncio.get_running_loop()
        pending = asyncio.Event()

        def on_loop(fn: Callable[[], None]) -> None:
            def apply() -> None:
                fn()
                pending.set()

            loop.call_soon_threadsafe(apply)

        def listed(kind: str) -> Callable[[Objects], None]:
            def handler(items: Objects) -> None:
                def replace() -> None:
                    setattr(self, "services" if kind == "Service" else "secrets", items)
                    self._listed.add(kind)
                    self._fresh.add(kind)

                on_loop(replace)

            return handler

        def changed(kind: str) -> Callable[[str, dict[str, Any]], None]:
            def handler(event: str, obj: dict[str, Any]) -> None:
                def apply() -> None:
                    store = self.services if kind == "Service" else self.secrets
                    name = obj.get("metadata", {}).get("name", "")
                    if event == "DELETED":
                        store.pop(name, None)
                    else:
                        store[name] = obj

                on_loop(apply)

            return handler

        # Each run has its own stop: a run restarted after a failure must not be stopped by
        # its predecessor's stop, nor share its threads.
        stop = self._stop = threading.Event()
        self._watches, self.threads = [], []

        def stale(kind: str) -> Callable[[], None]:
            def mark() -> None:
                loop.call_soon_threadsafe(self._fresh.discard, kind)

            return mark

        self._fresh = set()
        for kind in ("Service", "Secret"):
            w = _KindWatch(
                self.kube,
                kind,
                self.namespace,
                listed(kind),
                changed(kind),
                self.settings,
                stop,
                stale(kind),
            )
            self._watches.append(w)
            self.threads.append(run_thread(f"watch-{kind}", w.forever, stop))
            self.on_thread(self.threads[-1])
        last: SourceState | None = None
        try:
            while True:
                await pending.wait()
                pending.clear()
                await asyncio.sleep(0)  # let a burst of handed-over events land first
                for listener in self.secret_listeners:
                    listener()
                state = self.state()
                if not state.same_as(last):
                    last = state
                    publish(state)
        finally:
            stop.set()

    def state(self) -> SourceState:
        objects = [(f"kube:{n}", o) for n, o in sorted(self.services.items())]
        result = parse_services(
            objects,
            namespace=self.namespace,
            alertmanager_selector=self.alertmanager_selector,
            reserved=self.reserved,
            memo=self._memo,
            in_force=self._last_good.in_force,
        )
        synced = {"Service", "Secret"} <= self._listed
        if synced:
            self._last_good.restore()  # the memory is a Secret: readable once they are listed
        applied = self._last_good.apply(result, commit=synced)
        topology = Topology(
            clusters=applied.clusters,
            alertmanagers=result.alertmanagers,
            observability_addresses=self._envoy_addresses(),
            held=applied.held,
        )
        return SourceState(
            topology=topology, errors=applied.errors, synced=synced, warnings=result.warnings
        )

    def _envoy_addresses(self) -> tuple[str, ...]:
        """ClusterIPs of the observability Envoy Service (the DNS A/AAAA answers)."""
        if not self.envoy_selector:
            return ()
        found: list[str] = []
        for obj in self.services.values():
            labels = obj.get("metadata", {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in self.envoy_selector.items()):
                spec = obj.get("spec") or {}
                ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
                found += [ip for ip in ips if isinstance(ip, str) and is_ip(ip)]
        return tuple(found)

    def stop(self) -> None:
        self._stop.set()

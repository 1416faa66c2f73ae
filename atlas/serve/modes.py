"""The two ways Atlas runs, behind one interface: a manifests directory (the embedded
default) and Kubernetes. The daemon holds one ``Mode`` and never asks which.

A mode brings what differs: its source, where the PKI is kept, who may write, and the tasks
only it runs (Kubernetes: the leader election, the leader's reconcile pass; a directory: a
watch on the CA files that ``atlas ca rotate`` changes from another process).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from atlas.errors import AtlasError
from atlas.kube import Outage, connect
from atlas.pki_kube import KubeSecretStore
from atlas.pki_store import CertificateManager, DirectoryStore
from atlas.serve import metrics
from atlas.serve.leader import LeaderElector
from atlas.serve.options import ServeOptions
from atlas.serve.reconcile import Reconciler
from atlas.supervisor import Busy, Policy, Supervisor, run_thread
from atlas.waiting import wait_event
from watchers.files import DirectorySource
from watchers.kube import KubeSource
from watchers.memory import FileMemory
from watchers.source import Source, SourceState

__all__ = [
    "KUBERNETES",
    "MEMORY_FILE",
    "DirectoryMode",
    "KubernetesMode",
    "Mode",
    "Wiring",
    "mode_for",
]

log = logging.getLogger("atlas")

KUBERNETES = "kubernetes"
"""``--source kubernetes``: watch the API instead of a manifests directory."""

MEMORY_FILE = "last-good.json"
"""In the state directory: the last good definition of every cluster (``watchers.memory``)."""

STUCK_AFTER = 300.0
"""Seconds a reconcile pass may run before liveness calls it stuck."""


class Wiring(Protocol):
    """What a mode asks of the daemon."""

    def on_state(self, state: SourceState) -> None:
        """A new state of the sources."""

    def poke(self) -> None:
        """Rebuild now, though the topology did not change (credentials or the CA did)."""

    @property
    def state(self) -> SourceState | None: ...


class Mode(Protocol):
    source: Source
    pki: CertificateManager

    def may_write(self) -> bool:
        """Whether this replica may write (issue credentials, create the CA)."""

    async def ca_ready(self) -> None:
        """Until the CA exists (created here when this replica may write)."""

    def start(self, supervisor: Supervisor, wiring: Wiring) -> None:
        """Start the source and the mode's own tasks."""

    def changed(self) -> None:
        """The sources changed: what depends on them may run again."""

    def stop(self) -> None: ...


class DirectoryMode:
    """A manifests directory, the PKI in a state directory: one writer, this daemon."""

    def __init__(self, options: ServeOptions) -> None:
        settings = options.settings
        self.store = DirectoryStore(options.state_dir)
        self.pki = CertificateManager(self.store, settings.pki)
        self.directory = DirectorySource(
            options.source,
            namespace=settings.namespace,
            alertmanager_selector=settings.alertmanager_selector,
            observability_addresses=options.dns_addresses,
            reserved=(settings.observability_node,),
            poll_interval=settings.poll_interval,
            settle=settings.manifest_settle,
            memory=FileMemory(Path(options.state_dir) / MEMORY_FILE),
        )
        self.source: Source = self.directory

    def may_write(self) -> bool:
        return True

    async def ca_ready(self) -> None:
        await asyncio.to_thread(self.pki.ca)

    def start(self, supervisor: Supervisor, wiring: Wiring) -> None:
        metrics.LEADER.set(1)  # a directory has one writer: this daemon
        directory = self.directory
        supervisor.start("source", lambda: directory.run(wiring.on_state), Policy.RESTART)
        supervisor.start("pki-files", lambda: self._watch_ca_files(wiring), Policy.RESTART)

    def changed(self) -> None:
        pass

    def stop(self) -> None:
        pass

    async def _watch_ca_files(self, wiring: Wiring) -> None:
        """``atlas ca rotate`` (another process) changes the CA files; rebuild at once so the
        new leaves and bundle reach every Envoy over SDS."""
        files = [self.store.root / n for n in ("ca.crt", "ca-previous.pem")]

        def signature() -> tuple[tuple[int, int], ...]:
            result = []
            for f in files:
                try:
                    st = f.stat()
                    result.append((st.st_mtime_ns, st.st_size))
                except FileNotFoundError:
                    result.append((0, 0))
            return tuple(result)

        last = signature()
        while True:
            await asyncio.sleep(1.0)
            current = signature()
            if current != last:
                last = current
                log.info("CA files changed: re-issuing leaves and pushing the new bundle")
                wiring.poke()


class KubernetesMode:
    """Services and Secrets of a namespace, the PKI in Secrets, one writer: the Lease holder,
    which also keeps the Events, the values Secrets and the last good definitions."""

    def __init__(self, options: ServeOptions, on_thread: Callable[[Any], None]) -> None:
        settings = options.settings
        self.settings = settings
        self.kube = connect(kubeconfig=options.kubeconfig, context=options.kube_context)
        self.kube_source = KubeSource(
            self.kube,
            namespace=settings.namespace,
            alertmanager_selector=settings.alertmanager_selector,
            envoy_selector=settings.envoy_selector,
            reserved=(settings.observability_node,),
            last_good=settings.names.last_good,
            settings=settings.watch,
            on_thread=on_thread,
        )
        self.source: Source = self.kube_source
        identity = options.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.leader = LeaderElector(
            self.kube, settings.namespace, identity, settings.lease, name=settings.instance
        )
        source = self.kube_source
        self.store = KubeSecretStore(
            self.kube,
            settings.namespace,
            names=settings.names,
            cached=source.secret,
            listed=lambda: list(source.secrets),
            may_write=self.leader.is_leader,
        )
        self.pki = CertificateManager(self.store, settings.pki)
        network = settings.network
        ads = options.control_plane_service or (
            f"{network.control_plane_address}:{network.control_plane_port}"
        )
        self.reconciler = Reconciler(
            self.kube, settings.namespace, self.pki, self.store, settings, ads_address=ads
        )
        self.busy = Busy()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def may_write(self) -> bool:
        return self.leader.is_leader()

    async def ca_ready(self) -> None:
        """The Secrets must be listed before deciding there is no CA, and only the leader may
        create one; until then this replica waits."""
        while True:
            if self.kube_source.secrets_listed:
                if self.store.load_ca() is not None:
                    return
                if self.may_write():
                    await asyncio.to_thread(self.pki.ca)
                    return
            await asyncio.sleep(0.1)

    def start(self, supervisor: Supervisor, wiring: Wiring) -> None:
        self._loop = asyncio.get_running_loop()
        leader = self.leader
        supervisor.watch_thread(run_thread("leader", leader.run, leader.stop_event))
        source = self.kube_source

        def secrets_changed() -> None:
            """Credentials, the CA, a rotation request: rebuild and reconcile."""
            wiring.poke()
            self._wake.set()

        source.secret_listeners.append(secrets_changed)
        supervisor.start("source", lambda: source.run(wiring.on_state), Policy.RESTART)
        supervisor.start(
            "reconcile",
            lambda: self._reconcile_loop(wiring),
            Policy.RESTART,
            busy=self.busy,
            stuck_after=STUCK_AFTER,
        )

    def changed(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.leader.stop()
        self.kube_source.stop()

    async def _reconcile_loop(self, wiring: Wiring) -> None:
        interval = self.settings.watch.reconcile_interval
        outage = Outage("reconcile", log)
        paused = False
        source = self.kube_source
        while True:
            await wait_event(self._wake, interval)
            self._wake.clear()
            state = wiring.state
            if not self.may_write() or state is None or not state.synced:
                continue
            if not source.fresh:  # a watch failed and has not listed again: it may miss writes
                if not paused:
                    log.info("writes paused until Services and Secrets are listed again")
                paused = True
                continue
            if paused:
                log.info("writes resumed: Services and Secrets listed again")
                paused = False
            try:
                with self.busy.working():
                    await asyncio.to_thread(
                        self._reconcile_once,
                        wiring,
                        state,
                        dict(source.services),
                        dict(source.secrets),
                    )
                outage.ok()
            except AtlasError as err:
                outage.failed(err)

    def _reconcile_once(
        self,
        wiring: Wiring,
        state: SourceState,
        services: dict[str, Any],
        secrets: dict[str, Any],
    ) -> None:
        reconciler = self.reconciler
        if reconciler.rotate_ca_if_requested() and self._loop is not None:
            self._loop.call_soon_threadsafe(wiring.poke)
        reconciler.events(state.errors, services)
        # Held clusters (invalid, no good definition known here) keep their values too.
        reconciler.values(
            (*state.topology.cluster_names, *state.topology.held),
            secrets,
            alertmanager_replicas=state.topology.alertmanager_replicas,
        )
        reconciler.memory(self.kube_source.memory.pending, secrets)


def mode_for(options: ServeOptions, on_thread: Callable[[Any], None]) -> Mode:
    """The mode ``options.source`` names: ``kubernetes``, or a manifests directory."""
    if options.source == KUBERNETES:
        return KubernetesMode(options, on_thread)
    return DirectoryMode(options)

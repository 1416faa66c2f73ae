"""``atlas serve``: wires a source to its consumers on one asyncio loop.

Data flows one way: the source publishes ``SourceState`` values; the log, the xDS publisher
(and the DNS zone) react to the newest one. Servers only serve what those consumers built.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from atlas import metrics
from atlas.config import Settings
from atlas.errors import AtlasError
from atlas.http_status import start_http
from atlas.identities import NodeIdentities
from atlas.kube import Kube, connect
from atlas.leader import LeaderElector
from atlas.names import is_ip
from atlas.pki import CONTROL_PLANE_URI, CAState, Credential, issue, subject_key_id
from atlas.pki_kube import KubeSecretStore
from atlas.pki_store import CertificateManager, DirectoryStore
from atlas.reconcile import Reconciler
from atlas.waiting import wait_event
from dns_server.server import DnsServer
from watchers.files import DirectorySource
from watchers.kube import KubeSource
from watchers.source import SourceState
from xds_server.cache import SnapshotCache
from xds_server.publisher import SnapshotPublisher
from xds_server.server import AdsServicer, TLSMaterial, start_server
from xds_server.status import StatusBoard

__all__ = ["Atlas", "ServeOptions", "TopologyLog", "run"]

log = logging.getLogger("atlas")

KUBERNETES = "kubernetes"
"""``--source kubernetes``: watch the API instead of a manifests directory."""

CONTROL_PLANE_DNS = ("atlas",)
"""DNS SAN of Atlas's gRPC certificate: the SNI the bootstraps send, so that ordinary gRPC
clients can verify the server by name as Envoy verifies it by URI SAN."""


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    source: str
    state_dir: str
    settings: Settings = field(default_factory=Settings)
    dns_addresses: tuple[str, ...] = ()
    """The observability Envoy's in-cluster address(es), answered as A/AAAA records."""
    ads_listen: str = "0.0.0.0:18000"
    ads_tls: bool = True
    """Mutual TLS on the gRPC port, with the node id checked against the certificate."""
    http_listen: str = "0.0.0.0:9180"
    """Metrics and status; empty disables it."""
    dns_listen: tuple[str, ...] = ("0.0.0.0:5353",)
    """DNS (UDP and TCP) HOST:PORT; unprivileged by default, the container uses port 53."""
    kubeconfig: str | None = None
    kube_context: str | None = None
    identity: str | None = None
    """This replica's name in the Lease (default: hostname and pid)."""
    control_plane_service: str | None = None
    """HOST:PORT of Atlas's gRPC as the observability Envoy sees it (its Helm values)."""
    debounce: float = 0.05
    debounce_max: float = 0.5
    refresh_interval: float = 300.0


class TopologyLog:
    """Logs each new topology and each newly rejected object, once."""

    def __init__(self) -> None:
        self._reported: set[str] = set()
        self._last_topology: object = None

    def __call__(self, state: SourceState) -> None:
        current = set(state.messages)
        for message in sorted(current - self._reported):
            log.error("rejected: %s", message)
        for message in sorted(self._reported - current):
            log.info("resolved: %s", message)
        self._reported = current
        if state.topology != self._last_topology:
            self._last_topology = state.topology
            clusters = ", ".join(f"{c.name}x{c.replicas}" for c in state.topology.clusters)
            log.info(
                "topology: %d cluster(s) [%s], %d alertmanager(s)%s",
                len(state.topology.clusters),
                clusters or "none",
                len(state.topology.alertmanagers),
                "" if state.synced else " (not yet synced)",
            )


def _split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class Atlas:
    """The running daemon: start() brings every face up, stop() takes them down."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        settings = options.settings
        self.kube: Kube | None = None
        self.leader: LeaderElector | None = None
        self.reconciler: Reconciler | None = None
        self.source: DirectorySource | KubeSource
        if options.source == KUBERNETES:
            self._init_kube(options)
        else:
            self.pki = CertificateManager(DirectoryStore(options.state_dir), settings.pki)
            self.source = DirectorySource(
                options.source,
                namespace=settings.namespace,
                alertmanager_selector=settings.alertmanager_selector,
                observability_addresses=options.dns_addresses,
                reserved=(settings.observability_node,),
                poll_interval=settings.poll_interval,
            )
        self.cache = SnapshotCache()
        self.board = StatusBoard()
        self.identities = NodeIdentities(self.pki, settings.observability_node, self.may_write)
        self.publisher = SnapshotPublisher(
            self.cache,
            settings,
            self.identities,
            delay=options.debounce,
            max_delay=options.debounce_max,
            refresh_interval=options.refresh_interval,
        )
        self.dns = DnsServer(settings=settings.dns, srv_port=settings.observability_ports.thanos)
        self.state: SourceState | None = None
        self._log = TopologyLog()
        self._tasks: list[asyncio.Task[None]] = []
        self._grpc: Any = None
        self._http: asyncio.Server | None = None
        self.ads_port = 0
        self.dns_ports: list[int] = []
        self.http_port = 0
        self._control_plane: tuple[Credential, bytes] | None = None
        self._reconcile_wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _init_kube(self, options: ServeOptions) -> None:
        settings = options.settings
        self.kube = connect(kubeconfig=options.kubeconfig, context=options.kube_context)
        source = KubeSource(
            self.kube,
            namespace=settings.namespace,
            alertmanager_selector=settings.alertmanager_selector,
            envoy_selector=settings.envoy_selector,
            reserved=(settings.observability_node,),
            settings=settings.watch,
        )
        self.source = source
        identity = options.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.leader = LeaderElector(self.kube, settings.namespace, identity, settings.lease)
        self.store = KubeSecretStore(
            self.kube, settings.namespace, cached=source.secret, may_write=self.leader.is_leader
        )
        self.pki = CertificateManager(self.store, settings.pki)
        ads = options.control_plane_service or (
            f"{settings.network.control_plane_address}:{settings.network.control_plane_port}"
        )
        self.reconciler = Reconciler(
            self.kube, settings.namespace, self.pki, self.store, settings, ads_address=ads
        )

    def may_write(self) -> bool:
        """The directory store is ours alone; in Kubernetes only the Lease holder writes."""
        return self.leader is None or self.leader.is_leader()

    def _on_secrets(self) -> None:
        """Secrets changed (credentials, CA, a rotation request): rebuild and reconcile."""
        self.publisher.poke()
        self._reconcile_wake.set()

    def _on_state(self, state: SourceState) -> None:
        self.state = state
        self._log(state)
        if state.synced:
            self.publisher.update(state.topology)
            self.dns.update(state.topology, self._dns_addresses(state))
            self._reconcile_wake.set()

    def _dns_addresses(self, state: SourceState) -> tuple[str, ...]:
        """Configured addresses, those the source found, or the observability address."""
        found = self.options.dns_addresses + state.topology.observability_addresses
        if found:
            return found
        fallback = self.options.settings.network.observability_address
        return (fallback,) if is_ip(fallback) else ()

    def status(self) -> dict[str, Any]:
        state = self.state
        return {
            "synced": bool(state and state.synced),
            "clusters": [
                {
                    "name": c.name,
                    "replicas": c.replicas,
                    "envoy_address": c.envoy_address,
                    "group": c.group,
                }
                for c in (state.topology.clusters if state else ())
            ],
            "errors": list(state.messages) if state else [],
            "leader": self.may_write(),
            "ca": self._ca_status(),
            "dns": {"serial": self.dns.resolver.zone.serial if self.dns.resolver.zone else None},
            "nodes": self.board.snapshot(),
        }

    def _ca_status(self) -> dict[str, Any] | None:
        """The key ids of the trusted CAs: a node's ``client_certificate.issuer_key_id`` among
        the previous ones still depends on them (``atlas ca drop-previous`` checks it)."""
        ca = self.pki.store.load_ca()
        if ca is None:
            return None
        return {
            "current_key_id": subject_key_id(ca.current.certificate),
            "previous_key_ids": [
                subject_key_id(Credential(pem, b"").certificate) for pem in ca.previous
            ],
            "expires": ca.current.not_after.isoformat(),
        }

    def _current_ca(self) -> CAState:
        ca = self.pki.store.load_ca()
        if ca is None:
            ca = self.pki.ca()  # creates it: only reached where this replica may write
        return ca

    def _control_plane_tls(self) -> tuple[bytes, bytes, bytes]:
        """Each replica's own server certificate, issued in memory from the current CA: it
        need not be shared, so followers never have to write to get one."""
        ca = self._current_ca()
        cached = self._control_plane
        if cached is None or cached[1] != ca.current.cert_pem or cached[0].needs_renewal():
            credential = issue(
                ca.current,
                CONTROL_PLANE_URI,
                client=False,
                dns_names=CONTROL_PLANE_DNS,
                key_type=self.pki.settings.key_type,
            )
            self._control_plane = cached = (credential, ca.current.cert_pem)
        # The chain carries the cross-signed CA during a rotation: Envoys whose bootstrap still
        # trusts only the previous CA must keep verifying Atlas when they reconnect.
        return cached[0].cert_pem + ca.cross_signed, cached[0].key_pem, ca.bundle_pem

    async def _wait_for_ca(self) -> None:
        """Kubernetes: the Secrets must be listed before deciding there is no CA, and only the
        leader may create one; until then this replica waits."""
        if self.kube is None:
            await asyncio.to_thread(self.pki.ca)
            return
        assert isinstance(self.source, KubeSource)
        while True:
            if self.source.secrets_listed:
                if self.pki.store.load_ca() is not None:
                    return
                if self.may_write():
                    await asyncio.to_thread(self.pki.ca)
                    return
            await asyncio.sleep(0.1)

    async def _watch_pki_files(self) -> None:
        """Directory mode: ``atlas ca rotate`` (another process) changes the CA files; rebuild
        at once so the new leaves and bundle reach every Envoy over SDS."""
        assert isinstance(self.pki.store, DirectoryStore)
        files = [self.pki.store.root / n for n in ("ca.crt", "ca-previous.pem")]

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
                self.publisher.poke()

    async def _reconcile_loop(self) -> None:
        assert self.reconciler is not None and isinstance(self.source, KubeSource)
        interval = self.options.settings.watch.reconcile_interval
        while True:
            await wait_event(self._reconcile_wake, interval)
            self._reconcile_wake.clear()
            state = self.state
            if not self.may_write() or state is None or not state.synced:
                continue
            source = self.source
            try:
                await asyncio.to_thread(
                    self._reconcile_once, state, dict(source.services), dict(source.secrets)
                )
            except AtlasError as err:
                log.warning("reconcile: %s", err)

    def _reconcile_once(
        self, state: SourceState, services: dict[str, Any], secrets: dict[str, Any]
    ) -> None:
        assert self.reconciler is not None
        if self.reconciler.rotate_ca_if_requested():
            self._poke_from_thread()
        self.reconciler.events(state.errors, services)
        self.reconciler.values(state.topology.cluster_names, secrets)

    def _poke_from_thread(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.publisher.poke)

    async def start(self) -> None:
        opts = self.options
        self._loop = asyncio.get_running_loop()
        if self.leader is not None:
            threading.Thread(target=self.leader.run, name="leader", daemon=True).start()
        else:
            metrics.LEADER.set(1)  # a directory has one writer: this daemon
        if isinstance(self.source, KubeSource):
            self.source.secret_listeners.append(self._on_secrets)
            self._tasks.append(asyncio.create_task(self.source.run(self._on_state), name="source"))
        await self._wait_for_ca()
        await asyncio.to_thread(self._control_plane_tls)
        servicer = AdsServicer(
            self.cache,
            self.board,
            observability_node=opts.settings.observability_node,
            check_identity=opts.ads_tls,
        )
        tls = TLSMaterial(self._control_plane_tls) if opts.ads_tls else None
        self._grpc, self.ads_port = await start_server(servicer, opts.ads_listen, tls=tls)
        if opts.http_listen:
            host, port = _split_hostport(opts.http_listen)
            self._http = await start_http(host, port, self.status)
            self.http_port = self._http.sockets[0].getsockname()[1]
        self.dns_ports = [await self.dns.start(*_split_hostport(a)) for a in opts.dns_listen]
        self._tasks.append(asyncio.create_task(self.publisher.run(), name="publisher"))
        if isinstance(self.source, DirectorySource):
            self._tasks.append(asyncio.create_task(self.source.run(self._on_state), name="source"))
            self._tasks.append(asyncio.create_task(self._watch_pki_files(), name="pki-files"))
        if self.reconciler is not None:
            self._tasks.append(asyncio.create_task(self._reconcile_loop(), name="reconcile"))
        log.info(
            "ADS on %s (port %d, %s), HTTP on %s, DNS on %s; source %s, PKI in %s",
            opts.ads_listen,
            self.ads_port,
            "mTLS" if opts.ads_tls else "plaintext",
            opts.http_listen or "-",
            ", ".join(opts.dns_listen),
            opts.source,
            self.pki.store.location,
        )

    async def stop(self) -> None:
        if self.leader is not None:
            self.leader.stop()
        if isinstance(self.source, KubeSource):
            self.source.stop()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task that ignored its cancellation must not keep the daemon alive.
            _, stuck = await asyncio.wait(self._tasks, timeout=5)
            for task in stuck:
                log.error("task %s did not stop within 5 s", task.get_name())
        if self._http is not None:
            self._http.close()
        await self.dns.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace=1)


def run(options: ServeOptions) -> int:
    """Run until SIGINT/SIGTERM; exit code 0 on a requested stop."""

    async def main() -> None:
        atlas = Atlas(options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await atlas.start()
        await stop.wait()
        await atlas.stop()
        log.info("stopped")

    asyncio.run(main())
    return 0

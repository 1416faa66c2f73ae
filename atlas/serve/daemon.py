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
from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY

from atlas.config import Settings
from atlas.errors import ListenError, ManifestError
from atlas.names import is_ip
from atlas.pki import CONTROL_PLANE_URI, CAState, Credential, issue
from atlas.pki_store import bootstrap_name
from atlas.serve import metrics
from atlas.serve.admission import MemberAdmission
from atlas.serve.health import NodeMetrics, liveness, readiness, status_document
from atlas.serve.http import start_http
from atlas.serve.identities import NodeIdentities
from atlas.serve.modes import Mode, mode_for
from atlas.serve.options import ServeOptions
from atlas.supervisor import Policy, Supervisor
from dns_server.server import DnsServer
from watchers.source import SourceState
from xds_server.cache import SnapshotCache
from xds_server.collector import tune_for_streams
from xds_server.publisher import SnapshotPublisher
from xds_server.server import AdsServicer, ServerOptions, TLSMaterial, start_server
from xds_server.status import StatusBoard

__all__ = ["Atlas", "TopologyLog", "run"]

log = logging.getLogger("atlas")

BUILD_STUCK_AFTER = 300.0
"""Seconds a build or reconcile pass may run before liveness calls it stuck (a cold build of
100,000 clusters takes a few seconds)."""

CONTROL_PLANE_DNS = ("atlas",)
"""DNS SAN of Atlas's gRPC certificate: the SNI the bootstraps send, so that ordinary gRPC
clients can verify the server by name as Envoy verifies it by URI SAN."""


class TopologyLog:
    """Logs each new topology, and each rejected object and warning once: when it appears
    (with its reason) and when it is gone. A source re-reads every poll; the log does not."""

    def __init__(self) -> None:
        self._reported: set[str] = set()
        self._warned: set[str] = set()
        self._last_topology: object = None

    def __call__(self, state: SourceState) -> None:
        current = set(state.messages)
        for message in sorted(current - self._reported):
            log.error("rejected: %s", message)
        for message in sorted(self._reported - current):
            log.info("resolved: %s", message)
        self._reported = current
        warned = set(state.warnings)
        for message in sorted(warned - self._warned):
            log.warning("%s", message)
        self._warned = warned
        counts = dict.fromkeys(metrics.REJECTED_KINDS, 0)
        for err in state.errors:
            kind = err.kind if isinstance(err, ManifestError) else "file"
            counts[kind] = counts.get(kind, 0) + 1
        for kind, count in counts.items():
            metrics.REJECTED_OBJECTS.labels(kind).set(count)
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


def _bind_reason(err: BaseException) -> str:
    """Why a listen failed, in the operator's words: the OS's reason, or gRPC's (which says
    only that it failed; an address in use is by far the most common cause)."""
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno).lower()
    return "address already in use, or not an address of this host"


def _bindable(face: str, address: str) -> None:
    """Bind ``address`` once, as the server will: gRPC reports a failed bind only as a line of
    its own on stderr and "failed to bind", where the OS says why."""
    host, port = _split_hostport(address)
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ListenError(face, address, _bind_reason(err)) from None


class Atlas:
    """The running daemon: start() brings every face up, stop() takes them down."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        settings = options.settings
        self.supervisor = Supervisor(self._fatal)
        self.exit_code = 0
        self._stopping = asyncio.Event()
        self.mode: Mode = mode_for(options, self.supervisor.watch_thread)
        self.source = self.mode.source
        self.pki = self.mode.pki
        self.cache = SnapshotCache()
        self.board = StatusBoard()
        self.identities = NodeIdentities(self.pki, settings.observability_node, self.may_write)
        self.publisher = SnapshotPublisher(
            self.cache,
            settings,
            self.identities,
            delay=options.debounce,
            max_delay=options.debounce_max,
            refresh_interval=min(
                options.refresh_interval, settings.pki.leaf_lifetime.total_seconds() / 6
            ),
            source_version=lambda: self.source.version,
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
        self._servicer: AdsServicer | None = None
        self._collector: NodeMetrics | None = None

    def may_write(self) -> bool:
        """The directory store is ours alone; in Kubernetes only the Lease holder writes."""
        return self.mode.may_write()

    def poke(self) -> None:
        """Rebuild now: credentials or the CA changed (``Wiring``)."""
        self.publisher.poke()

    def on_state(self, state: SourceState) -> None:
        """A new state of the sources (``Wiring``): the log, the publisher, DNS, the mode."""
        self.state = state
        self._log(state)
        if state.synced:
            self.publisher.update(state.topology)
            self.dns.update(state.topology, self._dns_addresses(state))
            self.mode.changed()

    def _dns_addresses(self, state: SourceState) -> tuple[str, ...]:
        """Configured addresses, those the source found, or the observability address."""
        found = self.options.dns_addresses + state.topology.observability_addresses
        if found:
            return found
        fallback = self.options.settings.network.observability_address
        return (fallback,) if is_ip(fallback) else ()

    def status(self) -> dict[str, Any]:
        return status_document(self)

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

    def _fatal(self, task: str) -> None:
        """A task that must not fail did: stop, and exit non-zero so the pod is restarted."""
        self.exit_code = 1
        self._stopping.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    # -- what health reads (``health.Observed``) -------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.options.settings

    def problems(self) -> list[str]:
        return self.supervisor.problems()

    def current_ca(self) -> CAState | None:
        return self.pki.store.load_ca()

    def source_version(self) -> str:
        return self.source.version

    def board_entries(self) -> list[dict[str, Any]]:
        return self.board.snapshot()

    def served_nodes(self) -> tuple[str, ...]:
        return self.cache.nodes()

    def served_versions(self, node: str) -> Mapping[str, str] | None:
        snapshot = self.cache.snapshot(node)
        return snapshot.versions if snapshot is not None else None

    def http_serving(self) -> bool:
        """The HTTP endpoint accepts connections (or is switched off)."""
        return self._http is None or self._http.is_serving()

    async def _watch_servers(self) -> None:
        """ADS, DNS and HTTP must keep serving: a replica that lost one must not linger."""
        while True:
            await asyncio.sleep(2.0)
            lost = []
            if not self.dns.serving():
                lost.append("DNS")
            if not self.http_serving():
                lost.append("HTTP")
            if lost:
                raise RuntimeError(f"{' and '.join(lost)} stopped serving")

    async def start(self) -> None:
        """The mode's tasks and CA first (the ADS server's certificate comes from it), then
        the three listeners, then the publisher: a port that cannot be bound stops here."""
        opts = self.options
        self.mode.start(self.supervisor, self)
        await self.mode.ca_ready()
        await asyncio.to_thread(self._control_plane_tls)
        await self._start_ads()
        await self._start_http()
        await self._start_dns()
        self.supervisor.start(
            "publisher",
            self.publisher.run,
            Policy.RESTART,
            busy=self.publisher.busy,
            stuck_after=BUILD_STUCK_AFTER,
        )
        self.supervisor.start("servers", self._watch_servers, Policy.EXIT)
        self._collector = NodeMetrics(self)
        REGISTRY.register(self._collector)
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

    async def _start_ads(self) -> None:
        opts = self.options
        ads = opts.settings.ads
        admission = MemberAdmission(
            opts.settings.observability_node,
            check_identity=opts.ads_tls,
            members=lambda: self.publisher.members,
            published=self.publisher.published,
            bootstrap=lambda node: self.pki.store.load(bootstrap_name(node)),
        )
        self._servicer = AdsServicer(
            self.cache,
            self.board,
            observability_node=opts.settings.observability_node,
            admission=admission,
            limits=ads,
        )
        tls = TLSMaterial(self._control_plane_tls) if opts.ads_tls else None
        _bindable("ADS (gRPC)", opts.ads_listen)
        try:
            self._grpc, self.ads_port = await start_server(
                self._servicer, opts.ads_listen, tls=tls, options=ServerOptions(ads=ads)
            )
        except RuntimeError as err:  # grpc's "Failed to bind to address"
            raise ListenError("ADS (gRPC)", opts.ads_listen, _bind_reason(err)) from None

    async def _start_http(self) -> None:
        listen = self.options.http_listen
        if not listen:
            return
        host, port = _split_hostport(listen)
        try:
            self._http = await start_http(
                host,
                port,
                status=self.status,
                live=lambda: liveness(self),
                ready=lambda: readiness(self),
            )
        except OSError as err:
            raise ListenError("HTTP", listen, _bind_reason(err)) from None
        self.http_port = self._http.sockets[0].getsockname()[1]

    async def _start_dns(self) -> None:
        for address in self.options.dns_listen:
            try:
                self.dns_ports.append(await self.dns.start(*_split_hostport(address)))
            except OSError as err:
                raise ListenError("DNS (UDP and TCP)", address, _bind_reason(err)) from None

    async def stop(self) -> None:
        self.mode.stop()
        # Streams end cleanly first (Envoys reconnect to another replica at once); then the
        # gRPC server stops with nothing left to cancel.
        if self._servicer is not None:
            await self._servicer.shutdown(timeout=2.0)
        if self._grpc is not None:
            await self._grpc.stop(grace=1)
        tasks = self.supervisor.tasks()
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a task that ignored its cancellation must not keep the daemon alive.
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:
                log.error("task %s did not stop within 5 s", task.get_name())
        if self._http is not None:
            self._http.close()
        await self.dns.stop()
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None


def run(options: ServeOptions) -> int:
    """Run until SIGINT/SIGTERM (exit 0), or until a task that must not fail did (exit 1)."""
    tune_for_streams()

    async def main() -> int:
        atlas = Atlas(options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, atlas.request_stop)
        try:
            await atlas.start()
        except BaseException:
            await atlas.stop()  # what did start is stopped: no traceback from a closed loop
            raise
        await atlas.wait_stopping()
        await atlas.stop()
        log.info("stopped (exit %d)", atlas.exit_code)
        return atlas.exit_code

    return asyncio.run(main())

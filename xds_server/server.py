"""The ADS gRPC service on grpc.aio: streams in, responses out; no configuration logic here.

Who may stream is ``Admission``'s call (``admission.py``): with mutual TLS the node id must be
the identity in the client certificate, and Atlas adds that the node is a current cluster
holding its current credential. A refused stream ends with PERMISSION_DENIED before anything is
sent; an admitted node that stops being a member has its stream ended the same way as soon as
its snapshot is taken away. Each refusal is counted by reason and logged once per node and
reason (a refused Envoy retries every few seconds). ``AdsSettings`` (``atlas.config``) bound
streams per node and requests per stream.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from cryptography import x509
from envoy.service.discovery.v3 import ads_pb2, ads_pb2_grpc, discovery_pb2

from atlas.config import AdsSettings
from xds_server import delta, metrics, sotw
from xds_server.admission import (
    Admission,
    IdentityAdmission,
    Refusal,
    TokenBucket,
    expected_identity,
)
from xds_server.bodies import LARGE, Bodies
from xds_server.cache import ConfigWatcher
from xds_server.status import ClientCertificate, StatusBoard
from xds_server.stream import Push, Request, StreamState

__all__ = ["AdsServicer", "ServerOptions", "TLSMaterial", "expected_identity", "start_server"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
_END = object()
_CHANGED = object()
_LOGGED_REFUSALS = 4096
"""Distinct (node, reason) pairs remembered for logging once; beyond that refusals are only
counted (without TLS a client can make up any number of node ids)."""


@dataclass(frozen=True)
class _Stop:
    """Put on a stream's queue to end it with a status (a limit, a revocation)."""

    refusal: Refusal


def peer_certificate(context: grpc.aio.ServicerContext) -> x509.Certificate | None:
    pem = context.auth_context().get("x509_pem_cert")
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem[0])
    except ValueError:
        return None


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        cache: ConfigWatcher,
        board: StatusBoard,
        *,
        observability_node: str,
        check_identity: bool = True,
        admission: Admission | None = None,
        limits: AdsSettings | None = None,
    ) -> None:
        self.cache = cache
        self.board = board
        self.observability_node = observability_node
        self.admission: Admission = admission or IdentityAdmission(
            observability_node, check_identity=check_identity
        )
        self.limits = limits or AdsSettings()
        self._queues: set[asyncio.Queue[Any]] = set()
        """Every open stream's queue: ``shutdown`` ends them cleanly."""
        self._open: dict[str, int] = {}
        """Admitted streams per node (``AdsSettings.streams_per_node``)."""
        self._logged: dict[str, set[str]] = {}
        """Per node, the refusal reasons already logged; forgotten when the node is admitted."""
        self._logged_pairs = 0
        self._closing = False
        self._bodies = Bodies()
        """Large responses' resource bytes, shared by the streams sent the same version."""

    async def shutdown(self, timeout: float) -> None:
        """End every stream as finished (status OK), so an Envoy reconnects to another replica
        at once, and no stream is left for the server's stop to cancel (which gRPC logs as an
        error per stream)."""
        self._closing = True  # new streams are refused, not served and cut again
        for queue in list(self._queues):
            queue.put_nowait(_END)
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queues and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    async def StreamAggregatedResources(
        self,
        requests: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        encode = functools.partial(sotw.encode, bodies=self._bodies)
        async for response in self._serve(requests, context, sotw.decode, encode, "sotw"):
            yield response

    async def DeltaAggregatedResources(
        self,
        requests: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        encode = functools.partial(delta.encode, bodies=self._bodies)
        async for response in self._serve(requests, context, delta.decode, encode, "delta"):
            yield response

    async def _pump(self, requests: AsyncIterator[Any], queue: asyncio.Queue[Any]) -> None:
        """Read the client's requests into ``queue`` at most as fast as its bucket allows."""
        limits = self.limits
        bucket = TokenBucket(limits.requests_per_second, limits.request_burst, time.monotonic())
        throttled_since: float | None = None
        try:
            async for request in requests:
                now = time.monotonic()
                wait = bucket.take(now)
                if wait > 0:
                    metrics.THROTTLED.inc()
                    throttled_since = throttled_since or now
                    if now - throttled_since > limits.throttled_for:
                        queue.put_nowait(_Stop(_too_fast(limits)))
                        return
                    await asyncio.sleep(wait)  # not reading: flow control holds the client
                else:
                    throttled_since = None
                if queue.qsize() >= limits.queued_requests:
                    message = f"more than {limits.queued_requests} requests not yet handled"
                    code = grpc.StatusCode.RESOURCE_EXHAUSTED
                    queue.put_nowait(_Stop(Refusal("backlog", message, code)))
                    return
                metrics.REQUESTS.inc()
                queue.put_nowait(request)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            queue.put_nowait(_END)

    async def _serve(
        self,
        requests: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
        decode: Callable[[Any], Request],
        encode: Callable[[Push], Resp],
        protocol: str,
    ) -> AsyncIterator[Resp]:
        if self._closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Atlas is shutting down")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues.add(queue)
        reader = asyncio.create_task(self._pump(requests, queue))
        try:
            first = await queue.get()
            if first is _END:
                return
            if isinstance(first, _Stop):
                await self._refuse("", first.refusal, context)
            node = first.node.id
            if not node:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "the first request must carry node.id"
                )
            certificate = peer_certificate(context)
            # The stream limit first: it costs nothing, and a node at its limit is refused
            # without asking admission (which may read the store: a flood of streams stays
            # cheap). Only admitted streams count, so claiming another node's id cannot
            # exhaust its limit.
            refusal = self._over_stream_limit(node)
            if refusal is None:
                await self.admission.ready()
                refusal = await self.admission.refusal(node, certificate)
            if refusal is None:
                refusal = self._over_stream_limit(node)  # others admitted meanwhile
            if refusal is not None:
                await self._refuse(node, refusal, context, certificate)
            self._logged_pairs -= len(self._logged.pop(node, ()))
            admitted = self.board.node(node)
            admitted.last_refusal = None
            if certificate is not None:
                admitted.client_certificate = ClientCertificate.of(certificate)
            self._open[node] = self._open.get(node, 0) + 1
            try:
                async for response in self._loop(
                    node, first, queue, context, decode, encode, protocol
                ):
                    yield response
            finally:
                self._open[node] -= 1
                if not self._open[node]:
                    del self._open[node]
        finally:
            self._queues.discard(queue)
            reader.cancel()

    def _over_stream_limit(self, node: str) -> Refusal | None:
        limit = self.limits.streams_for(node, self.observability_node)
        if self._open.get(node, 0) < limit:
            return None
        return Refusal(
            "stream_limit",
            f"node {node!r} already holds {limit} ADS stream(s), the most one node may",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )

    async def _refuse(
        self,
        node: str,
        refusal: Refusal,
        context: grpc.aio.ServicerContext,
        certificate: x509.Certificate | None = None,
    ) -> None:
        metrics.REFUSED.labels(refusal.reason).inc()
        # Remembered for the nodes Atlas serves or has seen (any id could be made up without
        # TLS): `atlas status` then says why an Envoy never gets in.
        if node and (self.cache.snapshot(node) is not None or self.board.get(node) is not None):
            self.board.refused(node, refusal.reason, refusal.message, certificate)
        reasons = self._logged.get(node, set())
        if refusal.reason not in reasons and self._logged_pairs < _LOGGED_REFUSALS:
            self._logged[node] = reasons | {refusal.reason}
            self._logged_pairs += 1
            log.warning(
                "refused ADS stream for node %s from %s: %s (logged once until admitted)",
                node or "?",
                context.peer(),
                refusal.message,
            )
        await context.abort(refusal.code, refusal.message)

    async def _loop(
        self,
        node: str,
        first: Any,
        queue: asyncio.Queue[Any],
        context: grpc.aio.ServicerContext,
        decode: Callable[[Any], Request],
        encode: Callable[[Push], Resp],
        protocol: str,
    ) -> AsyncIterator[Resp]:
        state = StreamState(node, self.board, protocol)
        unsubscribe = self.cache.subscribe(node, lambda: queue.put_nowait(_CHANGED))
        status = self.board.node(node)
        status.streams += 1
        status.protocol, status.peer = protocol, context.peer()
        metrics.CONNECTED.opened(node, protocol)
        log.info("node %s connected (%s) from %s", node, protocol, context.peer())
        try:
            item = first
            while item is not _END:
                if isinstance(item, _Stop):
                    await self._refuse(node, item.refusal, context)
                snapshot = self.cache.snapshot(node)
                if item is _CHANGED and not self.admission.still_member(node):
                    await self._refuse(node, _REVOKED, context)
                if item is not _CHANGED:
                    if item.node.id and item.node.id != node:
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node id changed")
                    state.receive(decode(item), snapshot)
                for push in state.pushes(snapshot):
                    if len(push.target) < LARGE:
                        yield encode(push)
                    else:  # 15 MB at 10,000 clusters: DNS and the other streams keep going
                        yield await asyncio.to_thread(encode, push)
                item = await queue.get()
        finally:
            unsubscribe()
            status.streams -= 1
            metrics.CONNECTED.closed(node, protocol)
            log.info("node %s disconnected (%s)", node, protocol)


_REVOKED = Refusal("revoked", "this cluster was removed from Atlas: its credentials are revoked")


def _too_fast(limits: AdsSettings) -> Refusal:
    return Refusal(
        "request_rate",
        f"more than {limits.requests_per_second:g} requests/s for {limits.throttled_for:g} s",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )


@dataclass(frozen=True)
class TLSMaterial:
    """Server certificate, key and client CA bundle, fetched again on every handshake."""

    fetch: Callable[[], tuple[bytes, bytes, bytes]]
    """Returns (cert_pem, key_pem, bundle_pem); called from gRPC's threads."""


def _credentials(tls: TLSMaterial) -> grpc.ServerCredentials:
    last: list[tuple[bytes, bytes, bytes]] = []

    def config() -> grpc.ServerCertificateConfiguration:
        cert, key, bundle = tls.fetch()
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=bundle)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        current = tls.fetch()
        if last and last[0] == current:
            return None
        last[:] = [current]
        return config()

    initial = config()
    last.append(tls.fetch())
    return grpc.dynamic_ssl_server_credentials(initial, fetch, require_client_authentication=True)


def _handler(servicer: AdsServicer) -> grpc.GenericRpcHandler:
    """The ADS service with responses that leave already serialized.

    ``sotw.encode`` and ``delta.encode`` write response bytes directly (a response can carry
    30,000 resources), so no response serializer is set; requests are parsed as usual.
    """
    service = ads_pb2.DESCRIPTOR.services_by_name["AggregatedDiscoveryService"].full_name
    return grpc.method_handlers_generic_handler(
        service,
        {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                servicer.StreamAggregatedResources,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                servicer.DeltaAggregatedResources,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
            ),
        },
    )


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """The gRPC server's own limits, set on purpose rather than left to gRPC's defaults."""

    ads: AdsSettings = field(default_factory=AdsSettings)
    """The largest request (``max_request_bytes``) and the streams one connection may hold
    (``max_streams_per_connection``)."""
    max_send_bytes: int = 64 * 1024 * 1024
    """Largest response: a state-of-the-world CDS response at 10,000 clusters is about 15 MB."""
    keepalive_time_ms: int = 30_000
    """Atlas pings an idle connection this often, so a dead peer's stream is noticed."""
    keepalive_timeout_ms: int = 10_000
    min_ping_interval_ms: int = 10_000
    """Clients may ping at most this often (Envoy's ADS keepalive is every 15 s at most);
    more often, and gRPC answers with GOAWAY ``too_many_pings``."""
    max_pending_calls: int = 20_000
    """Streams gRPC has accepted but the event loop has not yet picked up. gRPC's default,
    1,000, cancels the rest (status CANCELLED): when a large fleet reconnects at once, after
    a restart or a leader change, every stream beyond the first thousand or so was cut and
    retried with backoff, and 10,000 Envoys never settled (bench/xds_storm.py). Each pending
    call is a few KB; the per-node stream limit still bounds what one identity holds."""
    max_pending_seconds: int = 300
    """How long a stream may wait to be picked up before gRPC cancels it (gRPC's default,
    30 s). A fleet of 10,000 reconnecting to one replica takes seconds to pick up on two
    cores (docs/BENCHMARKS.md, "xDS reconnect storm"), a fleet twice that size about twice
    as long; a cancelled Envoy only retries later, at the back of the same queue."""

    bdp_probe: bool = False
    """gRPC's bandwidth-delay probing, which pings a connection as data arrives to size its
    receive window. Atlas receives only small requests (the largest, a delta reconnect of
    the observability Envoy, comes over the cluster's own network), so the pings are pure
    cost: off, a 10,000-node cold connect is faster (docs/BENCHMARKS.md, "xDS reconnect
    storm")."""

    def grpc_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_receive_message_length", self.ads.max_request_bytes),
            ("grpc.max_send_message_length", self.max_send_bytes),
            ("grpc.max_concurrent_streams", self.ads.max_streams_per_connection),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", self.min_ping_interval_ms),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.server.max_pending_requests", self.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", 2 * self.max_pending_calls),
            ("grpc.server_max_unrequested_time_in_server", self.max_pending_seconds),
            ("grpc.http2.bdp_probe", int(self.bdp_probe)),
            # A second daemon on the same port must fail to start, not share it.
            ("grpc.so_reuseport", 0),
        ]


async def start_server(
    servicer: AdsServicer,
    address: str,
    *,
    tls: TLSMaterial | None = None,
    options: ServerOptions | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start serving ADS on ``address`` (``host:port``, port 0 picks one); returns the port."""
    server = grpc.aio.server(options=(options or ServerOptions()).grpc_options())
    server.add_generic_rpc_handlers((_handler(servicer),))
    port = (
        server.add_secure_port(address, _credentials(tls))
        if tls is not None
        else server.add_insecure_port(address)
    )
    await server.start()
    return server, port

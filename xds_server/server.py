"""The ADS gRPC service on grpc.aio: streams in, responses out; no configuration logic here.

With mutual TLS on, the node id a client asks for must be the identity in its certificate
(``spiffe://atlas/observability`` for the observability node, ``spiffe://atlas/cluster/<id>``
otherwise); a mismatch ends the stream with PERMISSION_DENIED before anything is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from cryptography import x509
from envoy.service.discovery.v3 import ads_pb2, ads_pb2_grpc, discovery_pb2

from atlas.pki import OBSERVABILITY_URI, cluster_uri, uri_of
from xds_server import delta, metrics, sotw
from xds_server.cache import ConfigWatcher
from xds_server.status import ClientCertificate, StatusBoard
from xds_server.stream import Push, Request, StreamState

__all__ = ["AdsServicer", "TLSMaterial", "start_server"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
_END = object()
_CHANGED = object()


def expected_identity(node: str, observability_node: str) -> str:
    return OBSERVABILITY_URI if node == observability_node else cluster_uri(node)


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
        check_identity: bool,
    ) -> None:
        self.cache = cache
        self.board = board
        self.observability_node = observability_node
        self.check_identity = check_identity
        self._queues: set[asyncio.Queue[Any]] = set()
        """Every open stream's queue: ``shutdown`` ends them cleanly."""
        self._closing = False

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
        async for response in self._serve(requests, context, sotw.decode, sotw.encode, "sotw"):
            yield response

    async def DeltaAggregatedResources(
        self,
        requests: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        async for response in self._serve(requests, context, delta.decode, delta.encode, "delta"):
            yield response

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

        async def pump() -> None:
            try:
                async for request in requests:
                    queue.put_nowait(request)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            finally:
                queue.put_nowait(_END)

        reader = asyncio.create_task(pump())
        try:
            first = await queue.get()
            if first is _END:
                return
            node = first.node.id
            if not node:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "the first request must carry node.id"
                )
            certificate = peer_certificate(context)
            await self._authorize(node, certificate, context)
            if certificate is not None:
                self.board.node(node).client_certificate = ClientCertificate.of(certificate)
            async for response in self._loop(node, first, queue, context, decode, encode, protocol):
                yield response
        finally:
            self._queues.discard(queue)
            reader.cancel()

    async def _authorize(
        self,
        node: str,
        certificate: x509.Certificate | None,
        context: grpc.aio.ServicerContext,
    ) -> None:
        if not self.check_identity:
            return
        expected = expected_identity(node, self.observability_node)
        actual = uri_of(certificate) if certificate is not None else None
        if actual != expected:
            metrics.REFUSED.labels(node).inc()
            log.warning(
                "refused ADS stream for node %s from %s (certificate identity %s)",
                node,
                context.peer(),
                actual,
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"node {node!r} requires identity {expected}, certificate has {actual}",
            )

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
        metrics.CONNECTED.labels(node, protocol).inc()
        log.info("node %s connected (%s) from %s", node, protocol, context.peer())
        try:
            item = first
            while item is not _END:
                snapshot = self.cache.snapshot(node)
                if item is not _CHANGED:
                    if item.node.id and item.node.id != node:
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node id changed")
                    state.receive(decode(item), snapshot)
                for push in state.pushes(snapshot):
                    yield encode(push)
                item = await queue.get()
        finally:
            unsubscribe()
            status.streams -= 1
            metrics.CONNECTED.labels(node, protocol).dec()
            log.info("node %s disconnected (%s)", node, protocol)


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


async def start_server(
    servicer: AdsServicer, address: str, *, tls: TLSMaterial | None = None
) -> tuple[grpc.aio.Server, int]:
    """Start serving ADS on ``address`` (``host:port``, port 0 picks one); returns the port."""
    server = grpc.aio.server(
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
    )
    server.add_generic_rpc_handlers((_handler(servicer),))
    port = (
        server.add_secure_port(address, _credentials(tls))
        if tls is not None
        else server.add_insecure_port(address)
    )
    await server.start()
    return server, port

"""The ADS service over real gRPC on loopback, with and without mutual TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from atlas.pki import CONTROL_PLANE_URI, cluster_uri, create_ca, issue
from tests.polling import until
from tests.xds_server.fixtures import snapshots
from xds_server.cache import SnapshotCache
from xds_server.server import AdsServicer, TLSMaterial, start_server
from xds_server.status import StatusBoard
from xds_server.types import CLUSTER, LISTENER, SECRET


class Client:
    """A scripted ADS client: send requests when told, read responses as they come."""

    def __init__(self, channel: grpc.aio.Channel, delta: bool = False) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        method = stub.DeltaAggregatedResources if delta else stub.StreamAggregatedResources
        self.call = method(self._requests())

    async def _requests(self) -> AsyncIterator[Any]:
        while (item := await self.queue.get()) is not None:
            yield item

    async def send(self, request: Any) -> None:
        await self.queue.put(request)

    async def read(self, timeout: float = 3) -> Any:
        return await asyncio.wait_for(self.call.read(), timeout)


@pytest.fixture
async def served() -> AsyncIterator[tuple[SnapshotCache, StatusBoard, int]]:
    cache, board = SnapshotCache(), StatusBoard()
    for node, snap in snapshots().items():
        cache.set_snapshot(node, snap)
    server, port = await start_server(
        AdsServicer(cache, board, observability_node="atlas", check_identity=False), "127.0.0.1:0"
    )
    yield cache, board, port
    await server.stop(None)


async def test_sotw_ack_and_push_on_change(served: tuple[SnapshotCache, StatusBoard, int]) -> None:
    cache, board, port = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        client = Client(channel)
        await client.send(
            discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="east"), type_url=CLUSTER)
        )
        first = await client.read()
        assert first.type_url == CLUSTER and {r.type_url for r in first.resources} == {CLUSTER}
        assert len(first.resources) == 5  # thanos_0, thanos_1, prometheus, alertmanager, relay
        await client.send(
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER, version_info=first.version_info, response_nonce=first.nonce
            )
        )

        def east() -> dict[str, Any]:
            return dict({n["node"]: n for n in board.snapshot()}["east"])

        await until(
            lambda: east()["acked"].get("cluster") == first.version_info,
            within=5,
            what="the ACK recorded",
        )
        assert east()["connected"]
        from atlas.model import DownstreamCluster, Topology
        from tests.xds_server.fixtures import WEST

        bigger = snapshots(Topology((DownstreamCluster("east", "192.0.2.11", replicas=3), WEST)))
        cache.set_snapshot("east", bigger["east"])
        second = await client.read()
        assert len(second.resources) == 6 and second.version_info != first.version_info
        await client.send(None)


async def test_requests_sent_back_to_back_are_answered_and_a_new_node_id_ends_the_stream(
    served: tuple[SnapshotCache, StatusBoard, int],
) -> None:
    """An ACK and new subscriptions in one burst, as Envoy sends them: the server takes them
    where they are read, in order, and sends what they call for; a request naming another
    node is still refused by the stream."""
    cache, board, port = served
    snapshot = cache.snapshot("east")
    assert snapshot is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        client = Client(channel)
        await client.send(
            discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="east"), type_url=CLUSTER)
        )
        clusters = await client.read()
        secrets = list(snapshot.of(SECRET))
        for request in (
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER, version_info=clusters.version_info, response_nonce=clusters.nonce
            ),
            discovery_pb2.DiscoveryRequest(type_url=LISTENER),
            discovery_pb2.DiscoveryRequest(type_url=SECRET, resource_names=secrets),
        ):
            await client.send(request)
        answers = {(r := await client.read()).type_url: r for _ in range(2)}
        assert set(answers) == {LISTENER, SECRET}
        sent = {secret_pb2.Secret.FromString(r.value).name for r in answers[SECRET].resources}
        assert sent == set(secrets)
        status = {n["node"]: n for n in board.snapshot()}["east"]
        assert status["acked"]["cluster"] == clusters.version_info
        await client.send(discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="west")))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await client.read()
        assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "node id changed" in str(ended.value.details())


async def test_delta_initial_versions_and_removal(
    served: tuple[SnapshotCache, StatusBoard, int],
) -> None:
    cache, _, port = served
    have = {n: r.version for n, r in cache.snapshot("west").of(CLUSTER).items()}  # type: ignore[union-attr]
    have["stale"] = "v0"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        client = Client(channel, delta=True)
        await client.send(
            discovery_pb2.DeltaDiscoveryRequest(
                node=base_pb2.Node(id="west"), type_url=CLUSTER, initial_resource_versions=have
            )
        )
        response = await client.read()
        assert list(response.resources) == [] and list(response.removed_resources) == ["stale"]
        await client.send(None)


async def test_identity_must_match_the_node() -> None:
    ca = create_ca()
    server_cred = issue(ca, CONTROL_PLANE_URI, client=False, dns_names=("atlas",))
    cache = SnapshotCache()
    for node, snap in snapshots().items():
        cache.set_snapshot(node, snap)
    servicer = AdsServicer(cache, StatusBoard(), observability_node="atlas", check_identity=True)
    tls = TLSMaterial(lambda: (server_cred.cert_pem, server_cred.key_pem, ca.cert_pem))
    server, port = await start_server(servicer, "127.0.0.1:0", tls=tls)
    east = issue(ca, cluster_uri("east"), server=False)
    creds = grpc.ssl_channel_credentials(ca.cert_pem, east.key_pem, east.cert_pem)
    try:
        for node, expect_ok in (("east", True), ("west", False), ("atlas", False)):
            async with grpc.aio.secure_channel(
                f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "atlas")]
            ) as ch:
                client = Client(ch)
                await client.send(
                    discovery_pb2.DiscoveryRequest(
                        node=base_pb2.Node(id=node), type_url=SECRET, resource_names=["identity"]
                    )
                )
                if expect_ok:
                    response = await client.read()
                    assert response.resources and response.type_url == SECRET
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await client.read()
                    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
                await client.send(None)
    finally:
        await server.stop(None)

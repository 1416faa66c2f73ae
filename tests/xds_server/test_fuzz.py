"""Fuzzed DiscoveryRequests and DeltaDiscoveryRequests (hypothesis) on real gRPC streams: random
type URLs, names, nonces, versions, node ids and huge ``error_detail`` messages. A stream ends
with OK or with a status that names the problem, never with an error from a crash; the server
keeps serving, and a well-behaved stream on another node is not disturbed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.model import DownstreamCluster, Topology
from tests.polling import wait_until
from tests.xds_server.fixtures import EAST, snapshots
from xds_server.cache import SnapshotCache
from xds_server.server import AdsServicer, start_server
from xds_server.status import StatusBoard
from xds_server.types import ADS_ORDER, CLUSTER

KNOWN = list(ADS_ORDER)
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,  # "node id changed", no node id on the first request
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # a limit
}

type_urls = st.one_of(
    st.sampled_from(KNOWN),
    st.text(max_size=40),
    st.text(max_size=20).map(lambda t: "type.googleapis.com/" + t),
)
names = st.lists(st.one_of(st.just("*"), st.text(max_size=24)), max_size=12)
nonces = st.one_of(st.just(""), st.text(max_size=8), st.integers(0, 50).map(str))
details = st.one_of(
    st.none(),
    st.builds(
        status_pb2.Status,
        code=st.integers(0, 2**31 - 1),
        message=st.sampled_from([0, 10, 1000, 100_000, 3_000_000]).map(lambda n: "x" * n),
    ),
)
node_ids = st.one_of(st.just(""), st.just("east"), st.text(max_size=16))


def _sotw(
    first: bool, type_url: str, names_: list[str], nonce: str, version: str, node: str, error: Any
) -> discovery_pb2.DiscoveryRequest:
    request = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=names_, response_nonce=nonce, version_info=version
    )
    request.node.CopyFrom(base_pb2.Node(id="east" if first else node))
    if error is not None:
        request.error_detail.CopyFrom(error)
    return request


sotw_requests = st.lists(
    st.tuples(type_urls, names, nonces, st.text(max_size=20), node_ids, details),
    min_size=1,
    max_size=8,
).map(lambda rows: [_sotw(i == 0, *row) for i, row in enumerate(rows)])


def _delta(
    first: bool,
    type_url: str,
    subscribe: list[str],
    unsubscribe: list[str],
    initial: dict[str, str],
    nonce: str,
    node: str,
    error: Any,
) -> discovery_pb2.DeltaDiscoveryRequest:
    request = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=subscribe,
        resource_names_unsubscribe=unsubscribe,
        initial_resource_versions=initial,
        response_nonce=nonce,
    )
    request.node.CopyFrom(base_pb2.Node(id="east" if first else node))
    if error is not None:
        request.error_detail.CopyFrom(error)
    return request


delta_requests = st.lists(
    st.tuples(
        type_urls,
        names,
        names,
        st.dictionaries(st.text(max_size=16), st.text(max_size=16), max_size=6),
        nonces,
        node_ids,
        details,
    ),
    min_size=1,
    max_size=8,
).map(lambda rows: [_delta(i == 0, *row) for i, row in enumerate(rows)])


class Served:
    """An ADS server on loopback, on its own event loop in a thread."""

    def __init__(self) -> None:
        self.cache, self.board = SnapshotCache(), StatusBoard()
        for node, snap in snapshots().items():
            self.cache.set_snapshot(node, snap)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        servicer = AdsServicer(
            self.cache, self.board, observability_node="atlas", check_identity=False
        )
        self.server, self.port = self.run(start_server(servicer, "127.0.0.1:0"))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.run(self.server.stop(None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.stop()


def exchange(port: int, method: str, requests: list[Any]) -> grpc.StatusCode:
    """Send everything, half-close, drain the responses: the status the stream ended with."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = getattr(stub, method)(iter(requests), timeout=10)
        try:
            for _ in call:
                pass
        except grpc.RpcError as err:
            assert err.code() in ALLOWED, f"{err.code()}: {err.details()}"
            return err.code()
    return grpc.StatusCode.OK


class WellBehaved:
    """West's Envoy, meanwhile: ACKs everything and counts the responses it gets."""

    def __init__(self, port: int) -> None:
        self.responses: list[discovery_pb2.DiscoveryResponse] = []
        self._acks: list[discovery_pb2.DiscoveryRequest] = [
            discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="west"), type_url=CLUSTER)
        ]
        self._wake = threading.Condition()
        self._done = False
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.call = stub.StreamAggregatedResources(self._requests())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self) -> Iterator[discovery_pb2.DiscoveryRequest]:
        while True:
            with self._wake:
                while not self._acks and not self._done:
                    self._wake.wait()
                if self._done:
                    return
                request = self._acks.pop(0)
            yield request

    def _read(self) -> None:
        try:
            for response in self.call:
                self._ack(response)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.CANCELLED, err  # closed by the test

    def _ack(self, response: discovery_pb2.DiscoveryResponse) -> None:
        self.responses.append(response)
        with self._wake:
            self._acks.append(
                discovery_pb2.DiscoveryRequest(
                    type_url=CLUSTER,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
            )
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._done = True
            self._wake.notify()
        self.channel.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=sotw_requests)
def test_fuzzed_sotw_requests_end_cleanly(served: Served, requests: list[Any]) -> None:
    exchange(served.port, "StreamAggregatedResources", requests)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=delta_requests)
def test_fuzzed_delta_requests_end_cleanly(served: Served, requests: list[Any]) -> None:
    exchange(served.port, "DeltaAggregatedResources", requests)


def test_a_well_behaved_stream_is_not_disturbed_by_fuzzing(served: Served) -> None:
    west = WellBehaved(served.port)
    try:
        wait_until(lambda: west.responses, within=5, what="west's first response")
        first = west.responses[0]
        for _ in range(20):  # streams on east that NACK their first response with 2 MB
            ask = discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="east"), type_url=CLUSTER)
            junk = discovery_pb2.DiscoveryRequest(type_url="type.googleapis.com/junk")
            nack = discovery_pb2.DiscoveryRequest(type_url=CLUSTER, response_nonce="1")
            nack.error_detail.message = "y" * 2_000_000
            exchange(served.port, "StreamAggregatedResources", [ask, junk, nack])
        east = {n["node"]: n for n in served.board.snapshot()}["east"]
        assert east["last_nack"]["message"].startswith("yyy"), "the NACK was recorded"
        assert len(east["last_nack"]["message"]) < 2100, "but its text is bounded"
        bigger = snapshots(Topology((EAST, DownstreamCluster("west", "192.0.2.99", replicas=2))))
        served.loop.call_soon_threadsafe(served.cache.set_snapshot, "west", bigger["west"])
        wait_until(lambda: len(west.responses) >= 2, within=3, what="west's push after a change")
        assert west.responses[1].version_info != first.version_info
    finally:
        west.close()

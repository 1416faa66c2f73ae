"""atlas/thanos.py writes Thanos's messages by hand: byte for byte what classes generated
from proto/thanos/*.proto (Thanos's field numbers) serialize, and it reads them back."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas import thanos
from atlas.demo.ports import free_port
from tests.fakes.thanos import Sidecar, modules

names = st.text(
    st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co", "Cn"]),
    min_size=1,
    max_size=12,
)
labels = st.dictionaries(names, st.text(max_size=12), max_size=4)


def pb(name: str):  # type: ignore[no-untyped-def]
    return modules()[name]


def label_msgs(values: dict[str, str]):  # type: ignore[no-untyped-def]
    store = pb("store_pb2")
    return [store.Label(name=k, value=v) for k, v in sorted(values.items())]


@settings(max_examples=100, deadline=None)
@given(labels=labels, min_time=st.integers(0, 2**62), max_time=st.integers(0, 2**62))
def test_info_responses_are_thanos_bytes(
    labels: dict[str, str], min_time: int, max_time: int
) -> None:
    store, info = pb("store_pb2"), pb("info_pb2")
    expected = info.InfoResponse(
        label_sets=[store.LabelSet(labels=label_msgs(labels))],
        ComponentType="sidecar",
        store=info.StoreInfo(min_time=min_time, max_time=max_time),
    ).SerializeToString(deterministic=True)
    got = thanos.info_response(labels, min_time=min_time, max_time=max_time)
    assert got == expected
    assert thanos.decode_labels_response(got) == labels
    legacy = store.InfoResponse(
        labels=label_msgs(labels),
        min_time=min_time,
        max_time=max_time,
        storeType=store.SIDECAR,
        label_sets=[store.LabelSet(labels=label_msgs(labels))],
    ).SerializeToString(deterministic=True)
    assert thanos.store_info_response(labels, min_time=min_time, max_time=max_time) == legacy
    assert thanos.decode_labels_response(legacy, legacy=True) == labels


@settings(max_examples=50, deadline=None)
@given(labels=labels, chunk=st.binary(max_size=64))
def test_series_frames_and_requests_are_thanos_bytes(labels: dict[str, str], chunk: bytes) -> None:
    store = pb("store_pb2")
    expected = store.SeriesResponse(
        series=store.Series(
            labels=label_msgs(labels),
            chunks=[store.AggrChunk(max_time=2**62, raw=store.Chunk(data=chunk))],
        )
    ).SerializeToString(deterministic=True)
    assert thanos.series_frame(labels, chunk) == expected
    request = store.SeriesRequest(
        min_time=-5,
        max_time=2**62,
        matchers=[
            store.LabelMatcher(type=store.LabelMatcher.EQ, name="__name__", value="up"),
            store.LabelMatcher(type=store.LabelMatcher.RE, name="job", value=".+"),
        ],
    ).SerializeToString()
    assert thanos.decode_series_request(request) == {"__name__": "up"}


def test_the_probe_prefers_the_info_api_and_falls_back_for_older_sidecars() -> None:
    port = free_port("127.0.0.1")
    sidecar = Sidecar("127.0.0.1", port, {"cluster": "east", "replica": "0"})
    try:
        got = thanos.probe(f"127.0.0.1:{port}", "east-0.sidecars.thanos.atlas.:10901")
        assert got == ({"cluster": "east", "replica": "0"}, thanos.INFO_METHOD)
        assert sidecar.calls == {"info.Info": 1}
    finally:
        sidecar.stop()
    # A sidecar from before the Info API: only /thanos.Store/Info.
    store, store_grpc = pb("store_pb2"), pb("store_pb2_grpc")

    class Old(store_grpc.StoreServicer):  # type: ignore[misc,name-defined]
        def Info(self, request: object, context: object) -> object:
            return store.InfoResponse(
                label_sets=[store.LabelSet(labels=label_msgs({"cluster": "old"}))]
            )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    store_grpc.add_StoreServicer_to_server(Old(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        got = thanos.probe(f"127.0.0.1:{port}", "old-0.sidecars.thanos.atlas.:10901")
        assert got == ({"cluster": "old"}, thanos.STORE_INFO_METHOD)
    finally:
        server.stop(None)
    with pytest.raises(grpc.RpcError):
        thanos.probe(f"127.0.0.1:{free_port('127.0.0.1')}", "x", timeout=0.5)

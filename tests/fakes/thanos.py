"""A test Thanos sidecar and the client calls Thanos Query makes, from the protos in ``proto/``
(compiled with grpcio-tools once per test process).

No Thanos binary can be installed here. The stand-in serves what Thanos Query calls on a
sidecar, with Thanos's service names, methods and field numbers, so the bytes on the wire are a
real sidecar's:

* ``/thanos.info.Info/Info`` (current endpoint discovery) and the legacy ``/thanos.Store/Info``;
* ``/thanos.Store/Series``, a server stream of ``series`` frames of ``chunk_bytes`` each; a
  Series for the metric ``slow_metric`` pauses ``pause`` seconds after ``pause_after`` frames
  (a slow query over a long range);
* ``/thanos.Store/LabelNames`` and ``/thanos.Store/LabelValues`` from its series' labels.

It runs on Python's gRPC server, whose default keepalive enforcement is grpc-go's (at most one
ping per 5 minutes, strikes, then GOAWAY ``too_many_pings``). The grpc-go sidecar in
``tests/go`` serves the same calls where the test is about the transport itself.
"""

from __future__ import annotations

import importlib
import importlib.resources
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[2]
_PROTOS = ("thanos/store.proto", "thanos/info.proto")
_modules: dict[str, ModuleType] = {}
_lock = threading.Lock()

INFO_METHOD = "/thanos.info.Info/Info"
STORE_INFO_METHOD = "/thanos.Store/Info"
SERIES_METHOD = "/thanos.Store/Series"


def modules() -> dict[str, ModuleType]:
    """``store_pb2``, ``store_pb2_grpc``, ``info_pb2``, ``info_pb2_grpc``: compiled once."""
    with _lock:
        if not _modules:
            from grpc_tools import protoc

            well_known = importlib.resources.files("grpc_tools") / "_proto"
            out = Path(tempfile.mkdtemp(prefix="atlas-proto-"))
            rc = protoc.main(
                [
                    "protoc",
                    f"-I{ROOT / 'proto'}",
                    f"-I{well_known}",
                    f"--python_out={out}",
                    f"--grpc_python_out={out}",
                    *(str(ROOT / "proto" / p) for p in _PROTOS),
                ]
            )
            assert rc == 0, f"protoc failed on {_PROTOS}"
            sys.path.insert(0, str(out))
            for name in ("store_pb2", "store_pb2_grpc", "info_pb2", "info_pb2_grpc"):
                _modules[name] = importlib.import_module(f"thanos.{name}")
    return _modules


@dataclass
class SeriesShape:
    """What a Series call streams: ``series`` frames, ``chunk_bytes`` of chunk data each; for
    ``{__name__="<slow_metric>"}``, nothing at all for ``pause`` seconds after ``pause_after``
    frames. The same flags as the grpc-go sidecar in ``tests/go``."""

    series: int = 3
    chunk_bytes: int = 256
    slow_metric: str = "slow"
    pause_after: int = 2
    pause: float = 90.0


class Sidecar:
    """Serves the StoreAPI on ``host:port`` with external labels ``labels``."""

    def __init__(
        self,
        host: str,
        port: int,
        labels: dict[str, str],
        *,
        shape: SeriesShape | None = None,
        options: list[tuple[str, Any]] | None = None,
    ) -> None:
        m = modules()
        store, store_grpc = m["store_pb2"], m["store_pb2_grpc"]
        info_pb, info_grpc = m["info_pb2"], m["info_pb2_grpc"]
        self.labels = labels
        self.shape = shape or SeriesShape()
        self.calls: dict[str, int] = {}
        outer = self
        label_msgs = [store.Label(name=k, value=v) for k, v in sorted(labels.items())]

        def count(method: str) -> None:
            outer.calls[method] = outer.calls.get(method, 0) + 1

        class Info(info_grpc.InfoServicer):  # type: ignore[name-defined,misc]
            def Info(self, request: Any, context: Any) -> Any:
                count("info.Info")
                return info_pb.InfoResponse(
                    label_sets=[store.LabelSet(labels=label_msgs)],
                    ComponentType="sidecar",
                    store=info_pb.StoreInfo(min_time=0, max_time=2**62),
                )

        class Store(store_grpc.StoreServicer):  # type: ignore[name-defined,misc]
            def Info(self, request: Any, context: Any) -> Any:
                count("Store.Info")
                return store.InfoResponse(
                    labels=label_msgs,
                    storeType=store.SIDECAR,
                    label_sets=[store.LabelSet(labels=label_msgs)],
                    min_time=0,
                    max_time=2**62,
                )

            def Series(self, request: Any, context: Any) -> Iterator[Any]:
                count("Store.Series")
                yield from outer._series(request)

            def LabelNames(self, request: Any, context: Any) -> Any:
                count("Store.LabelNames")
                return store.LabelNamesResponse(names=sorted({"__name__", "series", *labels}))

            def LabelValues(self, request: Any, context: Any) -> Any:
                count("Store.LabelValues")
                values = {
                    "__name__": ["up"],
                    "series": [str(i) for i in range(outer.shape.series)],
                }.get(request.label, [labels[request.label]] if request.label in labels else [])
                return store.LabelValuesResponse(values=sorted(values))

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=options)
        info_grpc.add_InfoServicer_to_server(Info(), self.server)
        store_grpc.add_StoreServicer_to_server(Store(), self.server)
        bound = self.server.add_insecure_port(f"{host}:{port}")
        assert bound == port, f"could not bind {host}:{port}"
        self.server.start()

    def _series(self, request: Any) -> Iterator[Any]:
        store = modules()["store_pb2"]
        name = next(
            (m.value for m in request.matchers if m.name == "__name__" and m.type == m.EQ), "up"
        )
        shape = self.shape
        chunk = store.Chunk(type=store.Chunk.XOR, data=bytes(shape.chunk_bytes))
        for i in range(shape.series):
            if name == shape.slow_metric and i == shape.pause_after:
                time.sleep(shape.pause)
            series_labels = {**self.labels, "__name__": name, "series": str(i)}
            yield store.SeriesResponse(
                series=store.Series(
                    labels=[store.Label(name=k, value=v) for k, v in sorted(series_labels.items())],
                    chunks=[store.AggrChunk(min_time=0, max_time=2**62, raw=chunk)],
                )
            )

    def stop(self) -> None:
        self.server.stop(grace=None)


def _channel(
    target: str, authority: str, credentials: grpc.ChannelCredentials | None
) -> grpc.Channel:
    options = [("grpc.default_authority", authority)]
    if credentials is not None:
        return grpc.secure_channel(target, credentials, options=options)
    return grpc.insecure_channel(target, options=options)


def _labels(label_sets: Any) -> dict[str, str]:
    return {label.name: label.value for s in label_sets for label in s.labels}


def info(
    target: str,
    authority: str,
    *,
    timeout: float = 3.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> dict[str, str]:
    """``/thanos.info.Info/Info`` through ``target`` with ``authority``: the external labels."""
    m = modules()
    with _channel(target, authority, credentials) as channel:
        response = (
            m["info_pb2_grpc"].InfoStub(channel).Info(m["info_pb2"].InfoRequest(), timeout=timeout)
        )
    return _labels(response.label_sets)


def store_info(target: str, authority: str, *, timeout: float = 3.0) -> dict[str, str]:
    """The legacy ``/thanos.Store/Info`` (Thanos before the Info API)."""
    m = modules()
    with _channel(target, authority, None) as channel:
        response = (
            m["store_pb2_grpc"]
            .StoreStub(channel)
            .Info(m["store_pb2"].InfoRequest(), timeout=timeout)
        )
    return _labels(response.label_sets)


def label_names(target: str, authority: str, *, timeout: float = 3.0) -> list[str]:
    m = modules()
    with _channel(target, authority, None) as channel:
        stub = m["store_pb2_grpc"].StoreStub(channel)
        response = stub.LabelNames(m["store_pb2"].LabelNamesRequest(), timeout=timeout)
    return list(response.names)


def label_values(target: str, authority: str, label: str, *, timeout: float = 3.0) -> list[str]:
    m = modules()
    with _channel(target, authority, None) as channel:
        stub = m["store_pb2_grpc"].StoreStub(channel)
        response = stub.LabelValues(m["store_pb2"].LabelValuesRequest(label=label), timeout=timeout)
    return list(response.values)


@dataclass
class SeriesResult:
    frames: int
    chunk_bytes: int
    first_labels: dict[str, str]
    seconds: float


def series(target: str, authority: str, *, name: str = "up", timeout: float = 30.0) -> SeriesResult:
    """A whole ``/thanos.Store/Series`` stream for ``{__name__=name}``."""
    m = modules()
    store = m["store_pb2"]
    request = store.SeriesRequest(
        min_time=0,
        max_time=2**62,
        matchers=[store.LabelMatcher(type=store.LabelMatcher.EQ, name="__name__", value=name)],
    )
    started = time.monotonic()
    frames = size = 0
    first: dict[str, str] = {}
    with _channel(target, authority, None) as channel:
        for response in m["store_pb2_grpc"].StoreStub(channel).Series(request, timeout=timeout):
            frames += 1
            size += sum(len(c.raw.data) for c in response.series.chunks)
            if not first:
                first = {label.name: label.value for label in response.series.labels}
    return SeriesResult(frames, size, first, time.monotonic() - started)

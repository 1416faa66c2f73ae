"""A test Thanos sidecar: the real StoreAPI ``Info`` call from ``proto/``, compiled with
grpcio-tools at test time, answering with its own external labels."""

from __future__ import annotations

import importlib
import sys
import tempfile
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[2]
_modules: tuple[ModuleType, ModuleType] | None = None


def store_modules() -> tuple[ModuleType, ModuleType]:
    """(store_pb2, store_pb2_grpc), compiled once per test process."""
    global _modules
    if _modules is None:
        from grpc_tools import protoc

        out = Path(tempfile.mkdtemp(prefix="atlas-proto-"))
        rc = protoc.main(
            [
                "protoc",
                f"-I{ROOT / 'proto'}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                str(ROOT / "proto" / "thanos" / "store.proto"),
            ]
        )
        assert rc == 0, "protoc failed on proto/thanos/store.proto"
        sys.path.insert(0, str(out))
        _modules = (
            importlib.import_module("thanos.store_pb2"),
            importlib.import_module("thanos.store_pb2_grpc"),
        )
    return _modules


class Sidecar:
    """Serves Info on ``host:port`` with labels ``{cluster, replica}``."""

    def __init__(self, host: str, port: int, labels: dict[str, str]) -> None:
        pb2, pb2_grpc = store_modules()
        self.labels = labels
        self.calls = 0
        outer = self

        class Store(pb2_grpc.StoreServicer):  # type: ignore[name-defined,misc]
            def Info(self, request: Any, context: Any) -> Any:
                outer.calls += 1
                labels = [pb2.Label(name=k, value=v) for k, v in sorted(outer.labels.items())]
                return pb2.InfoResponse(
                    labels=labels, storeType=pb2.SIDECAR, label_sets=[pb2.LabelSet(labels=labels)]
                )

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb2_grpc.add_StoreServicer_to_server(Store(), self.server)
        bound = self.server.add_insecure_port(f"{host}:{port}")
        assert bound == port, f"could not bind {host}:{port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)


def info(
    target: str,
    authority: str,
    *,
    timeout: float = 3.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> dict[str, str]:
    """Call Info through ``target`` with ``authority``; returns the labels."""
    pb2, pb2_grpc = store_modules()
    options = [("grpc.default_authority", authority)]
    if credentials is not None:
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    with channel:
        response = pb2_grpc.StoreStub(channel).Info(pb2.InfoRequest(), timeout=timeout)
    return {label.name: label.value for label in response.labels}

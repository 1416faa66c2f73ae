"""The demo's Thanos sidecar: no Thanos binary can be installed here, so this serves what
Thanos Query calls on one, on the wire as Thanos does (``atlas.thanos``): both Info calls and a
Series stream of a few ``up`` series with the cluster's external labels."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent import futures
from typing import Any

import grpc

from atlas import thanos

__all__ = ["DemoSidecar"]


def _identity(data: bytes) -> bytes:
    return data


class DemoSidecar:
    def __init__(self, host: str, port: int, labels: Mapping[str, str]) -> None:
        self.labels = dict(labels)
        info = thanos.info_response(self.labels)
        store_info = thanos.store_info_response(self.labels)

        def series(request: bytes, context: Any) -> Iterator[bytes]:
            name = thanos.decode_series_request(request).get("__name__", "up")
            for i in range(3):
                yield thanos.series_frame(
                    {**self.labels, "__name__": name, "instance": f"demo-{i}"}, b""
                )

        handlers = {
            thanos.INFO_METHOD: grpc.unary_unary_rpc_method_handler(
                lambda request, context: info, _identity, _identity
            ),
            thanos.STORE_INFO_METHOD: grpc.unary_unary_rpc_method_handler(
                lambda request, context: store_info, _identity, _identity
            ),
            thanos.SERIES_METHOD: grpc.unary_stream_rpc_method_handler(
                series, _identity, _identity
            ),
        }

        class Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
            def service(self, details: Any) -> Any:
                return handlers.get(details.method)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((Handler(),))
        if self.server.add_insecure_port(f"{host}:{port}") != port:
            raise OSError(f"cannot listen on {host}:{port}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)

"""Clients the end-to-end tests talk to the network with, as the real ones do: Thanos Query's
Info call with its exact authority, plain and mutual-TLS HTTP, and background traffic that
records every failure."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tests.e2e.network import AtlasNetwork
from tests.fakes.thanos import info
from xds_server.types import SECRET

__all__ = ["Traffic", "ads_attempt", "connected", "http", "refused", "thanos", "tls_get"]


def thanos(net: AtlasNetwork, target: str) -> dict[str, str]:
    """Thanos Query's Info call, with its exact authority (trailing dot and SRV port)."""
    return info(net.thanos_address, net.thanos_authority(target))


def http(
    host: str,
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    conn = HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data.startswith(b"{") else {})
    finally:
        conn.close()


def tls_get(
    host: str, port: int, *, ca: Path, cert: Path | None, key: Path | None, host_header: str = "x"
) -> int:
    """An HTTP/1.1 GET over TLS with an optional client certificate; returns the status.

    Raises OSError (ssl.SSLError, reset, closed) when the server refuses the peer.
    """
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False  # Atlas identities are URI SANs, checked by Envoy, not names
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        # The status line is the answer: a local reply's connection closes only after Envoy's
        # delayed-close timeout (1 s), which is not the time the request took.
        while b"\r\n" not in data and (chunk := tls.recv(65536)):
            data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"no HTTP response: {data[:60]!r}")
    return int(data.split(b" ", 2)[1])


class Traffic:
    """Thanos Info calls in a loop through the observability Envoy, in a thread, while the
    body of the ``with`` runs; every failure is recorded."""

    def __init__(self, net: AtlasNetwork, targets: tuple[str, ...]) -> None:
        self.net, self.targets = net, targets
        self.failures: list[str] = []
        self.calls = 0
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            for target in self.targets:
                try:
                    thanos(self.net, target)
                    self.calls += 1
                except grpc.RpcError as err:
                    self.failures.append(f"{target}: {err.code()}")

    def __enter__(self) -> Traffic:
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._worker.join()

    def assert_all_succeeded(self, *, at_least: int) -> None:
        assert self.failures == [] and self.calls > at_least, (
            f"{len(self.failures)} failed of {self.calls}: {self.failures[:5]}"
        )


def connected(net: AtlasNetwork) -> set[str]:
    return {n["node"] for n in net.status()["nodes"] if n["connected"]}


def refused(call: Callable[[], Any]) -> bool:
    try:
        call()
    except grpc.RpcError:
        return True
    return False


def ads_attempt(
    net: AtlasNetwork, node: str, cert: bytes, key: bytes, *, timeout: float = 3.0
) -> Any:
    """Open an ADS stream to Atlas as ``node`` with this client certificate, as an Envoy does
    (its first request asks for its identity secret): the first response, or the RpcError
    the stream ended with."""
    ca = net.pki.ca().bundle_pem
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    options = [("grpc.ssl_target_name_override", "atlas")]
    address = f"{net.atlas_ip}:{net.ads_port}"
    with grpc.secure_channel(address, creds, options=options) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        request = discovery_pb2.DiscoveryRequest(
            node=base_pb2.Node(id=node), type_url=SECRET, resource_names=["identity"]
        )
        call = stub.StreamAggregatedResources(iter([request]), timeout=timeout)
        try:
            for response in call:
                return response
        except grpc.RpcError as err:
            return err
        raise AssertionError("the stream ended without a response or a status")

"""UDP and TCP framing around a Resolver; no DNS logic here.

UDP answers are limited to the client's EDNS payload (512 without EDNS, at most
``EDNS_PAYLOAD``); what does not fit is sent with TC so the client retries over TCP. TCP
carries several queries per connection (2-byte length prefix) and closes idle connections.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time

from dns_server import metrics
from dns_server.resolver import Resolver

__all__ = ["TCP_IDLE_TIMEOUT", "TcpHandler", "UdpProtocol"]

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0
"""Seconds a TCP connection may sit idle between queries (RFC 7766 suggests seconds)."""
MAX_TCP_CONNECTIONS = 512
"""Beyond this, new TCP connections are closed at once: a flood cannot exhaust descriptors."""


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        started = time.perf_counter()
        try:
            response = self.resolver.resolve(data)
        except Exception:  # a bug must not stop the server: log it, answer nothing
            log.exception("DNS handler failed on a %d-byte UDP packet", len(data))
            return
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)
            metrics.LATENCY.labels("udp").observe(time.perf_counter() - started)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class TcpHandler:
    def __init__(self, resolver: Resolver, *, idle_timeout: float = TCP_IDLE_TIMEOUT) -> None:
        self.resolver = resolver
        self.idle_timeout = idle_timeout
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        try:
            while True:
                try:
                    prefix = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout)
                    (length,) = struct.unpack("!H", prefix)
                    data = await asyncio.wait_for(reader.readexactly(length), self.idle_timeout)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                started = time.perf_counter()
                try:
                    response = self.resolver.resolve(data, tcp=True)
                except Exception:
                    log.exception("DNS handler failed on a %d-byte TCP message", len(data))
                    return
                if response is None:
                    return
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
                metrics.LATENCY.labels("tcp").observe(time.perf_counter() - started)
        except ConnectionError:
            return
        finally:
            self.connections -= 1
            writer.close()

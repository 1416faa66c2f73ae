"""UDP and TCP framing around a Resolver; no DNS logic here.

UDP answers are limited to the client's EDNS payload (512 without EDNS, at most
``EDNS_PAYLOAD``); what does not fit is sent with TC so the client retries over TCP. TCP
carries several queries per connection (2-byte length prefix) and closes idle connections.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time

from dns_server import metrics
from dns_server.resolver import Resolver

__all__ = ["TCP_IDLE_TIMEOUT", "TcpHandler", "UdpServer"]

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0
"""Seconds a TCP connection may sit idle between queries (RFC 7766 suggests seconds)."""
MAX_TCP_CONNECTIONS = 512
"""Beyond this, new TCP connections are closed at once: a flood cannot exhaust descriptors."""


UDP_BATCH = 64
"""Datagrams read per readiness event: one epoll round per packet would cost more than the
answer itself."""


class UdpServer:
    """UDP on the event loop with a reader that drains a batch of datagrams per wake-up."""

    def __init__(self, resolver: Resolver, sock: socket.socket) -> None:
        self.resolver = resolver
        self.sock = sock
        sock.setblocking(False)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._ready)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _ready(self) -> None:
        recvfrom, sendto, resolve = self.sock.recvfrom, self.sock.sendto, self.resolver.resolve
        observe = metrics.UDP_LATENCY.observe
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # e.g. ICMP errors surfacing on the socket
                log.debug("UDP receive error: %s", err)
                continue
            started = time.perf_counter()
            try:
                response = resolve(data)
            except Exception:  # a bug must not stop the server: log it, answer nothing
                log.exception("DNS handler failed on a %d-byte UDP packet", len(data))
                continue
            if response is None:
                continue
            try:
                sendto(response, addr)
            except (BlockingIOError, InterruptedError):
                metrics.DROPPED.inc()  # send buffer full: UDP clients retry
            except OSError as err:
                log.debug("UDP send to %s failed: %s", addr, err)
            observe(time.perf_counter() - started)


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
                    async with asyncio.timeout(self.idle_timeout):
                        prefix = await reader.readexactly(2)
                    (length,) = struct.unpack("!H", prefix)
                    async with asyncio.timeout(self.idle_timeout):
                        data = await reader.readexactly(length)
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
                metrics.TCP_LATENCY.observe(time.perf_counter() - started)
        except ConnectionError:
            return
        finally:
            self.connections -= 1
            writer.close()

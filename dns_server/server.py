"""The DNS face: listens on UDP and TCP and serves the newest zone.

``DnsServer.update`` takes a Topology (from the watchers) and swaps in a freshly built zone
with a bumped serial; until the first call every answer is SERVFAIL.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterable

from atlas.config import DNSSettings
from atlas.model import Topology
from dns_server.protocol import TcpHandler, UdpServer
from dns_server.resolver import Resolver
from dns_server.zone import SRV_PORT, build_zone

__all__ = ["DnsServer"]

log = logging.getLogger(__name__)


class DnsServer:
    def __init__(self, *, settings: DNSSettings | None = None, srv_port: int = SRV_PORT) -> None:
        self.settings = settings or DNSSettings()
        self.srv_port = srv_port
        self.resolver = Resolver()
        self._serial = 0
        self._last: tuple[Topology, tuple[str, ...]] | None = None
        self.last_error: str | None = None
        """Why the newest topology could not be made into a zone (the previous zone, or
        SERVFAIL before the first, is still served); None once one is built again."""
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[UdpServer] = []
        self.ports: list[tuple[str, int]] = []

    def update(self, topology: Topology, addresses: Iterable[str]) -> bool:
        """Serve ``topology``; returns False when nothing changed (serial kept), or when no
        zone could be made of it (``last_error`` says why; the last zone stays)."""
        key = (topology, tuple(sorted(set(addresses))))
        if key == self._last:
            return False
        # Serials increase on every change and track the clock, so a restarted replica
        # does not go backwards (RFC 1982 arithmetic is not needed within 68 years).
        serial = max(self._serial + 1, int(time.time()))
        try:
            zone = build_zone(
                topology,
                addresses=key[1],
                serial=serial,
                settings=self.settings,
                port=self.srv_port,
            )
            self.resolver.set_zone(zone)
        except Exception as err:  # a bug or a setting no check caught: never the end of DNS
            reason = f"{type(err).__name__}: {err}"
            if reason != self.last_error:
                log.error("DNS zone not built, still serving the previous one: %s", reason)
            self.last_error = reason
            return False
        self._serial, self._last, self.last_error = serial, key, None
        log.info("DNS zone serial %d: %d records", zone.serial, zone.record_count)
        return True

    @property
    def serial(self) -> int | None:
        """The serial of the zone served; None before the first."""
        zone = self.resolver.zone
        return zone.serial if zone is not None else None

    @property
    def synced(self) -> bool:
        """A zone is served (before that, every answer is SERVFAIL)."""
        return self.resolver.synced

    @property
    def answer_error(self) -> str | None:
        """Why an answer from the current zone last failed (SERVFAIL was sent instead)."""
        return self.resolver.last_error

    @property
    def addresses(self) -> tuple[str, ...]:
        """The observability Envoy's addresses the zone answers for every SRV target."""
        return self._last[1] if self._last is not None else ()

    async def start(self, host: str, port: int) -> int:
        """Listen on UDP and TCP at ``host:port`` (port 0 picks one for both)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        tcp = await asyncio.start_server(
            TcpHandler(self.resolver), host, port, family=family, reuse_address=True
        )
        port = tcp.sockets[0].getsockname()[1]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.bind((host, port))
        except OSError:
            sock.close()
            tcp.close()
            raise
        udp = UdpServer(self.resolver, sock)
        udp.start(loop)
        self._servers.append(tcp)
        self._udp.append(udp)
        self.ports.append((host, port))
        log.info("DNS on %s port %d (UDP and TCP)", host, port)
        return int(port)

    def serving(self) -> bool:
        """Every UDP socket open and every TCP server accepting (a liveness check)."""
        return all(u.sock.fileno() >= 0 for u in self._udp) and all(
            t.is_serving() for t in self._servers
        )

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for udp in self._udp:
            udp.close(loop)
        self._udp = []
        for server in self._servers:
            server.close()
            await server.wait_closed()

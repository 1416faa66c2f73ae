"""Query bytes in, response bytes out: every rcode rule of the zone ``atlas.``.

No sockets here (``protocol.py`` owns framing); a resolver can be driven directly in tests.

* REFUSED: names outside ``atlas.``, opcodes other than QUERY, classes other than IN/ANY.
* SERVFAIL: until the first full sync of the sources (Thanos keeps its endpoints on SERVFAIL).
* FORMERR: malformed questions; BADVERS: EDNS versions other than 0.
* NXDOMAIN / NODATA carry the SOA (its minimum is the negative-cache TTL).
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from dns_server import metrics
from dns_server.answers import PreparedZone, Sections
from dns_server.wire import Drop, FormErr, Query, pack_header, parse_query
from dns_server.zone import Zone

__all__ = ["EDNS_PAYLOAD", "MAX_TCP", "Resolver"]

log = logging.getLogger(__name__)

EDNS_PAYLOAD = 1232
"""Our advertised UDP payload (DNS flag day 2020): no IP fragmentation on common paths."""
MAX_TCP = 65535

FORMERR, SERVFAIL, REFUSED, NOERROR = 1, 2, 5, 0
_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_IN, _ANY_CLASS = 1, 255
_BADVERS_TTL = 1 << 24  # extended rcode 16 = (1 << 4) in the OPT TTL's top byte


def _opt(ttl: int = 0) -> bytes:
    return b"\x00" + struct.pack("!HHIH", 41, EDNS_PAYLOAD, ttl, 0)


_OPT = _opt()
_OPT_BADVERS = _opt(_BADVERS_TTL)


REPLAY_ENTRIES = 8192
"""Bound on remembered responses per zone version (a flood of distinct queries clears it)."""


class Resolver:
    def __init__(self) -> None:
        self._prepared: PreparedZone | None = None
        self.origin = "atlas."
        self._suffix = ".atlas."
        # Everything after the 2-byte id determines the response after the id, for one zone
        # version: a repeated question is answered with one lookup and one concatenation.
        self._replay: dict[tuple[bool, bytes], tuple[bytes, Any]] = {}
        self.last_error: str | None = None
        """Why an answer from the current zone last failed (SERVFAIL was sent instead); a new
        zone clears it."""

    @property
    def zone(self) -> Zone | None:
        return self._prepared.zone if self._prepared else None

    @property
    def synced(self) -> bool:
        return self._prepared is not None

    def set_zone(self, zone: Zone) -> None:
        """Swap in a new zone atomically: the next query sees all of it or none of it."""
        self._prepared = PreparedZone(zone)
        self._replay = {}
        self.last_error = None
        metrics.SERIAL.set(zone.serial)
        metrics.RECORDS.set(zone.record_count)

    def resolve(self, packet: bytes, *, tcp: bool = False) -> bytes | None:
        """The response to ``packet``, sized for UDP (the client's EDNS payload) or TCP."""
        key = (tcp, packet[2:])
        hit = self._replay.get(key)
        if hit is not None:
            hit[1].inc()
            return packet[:2] + hit[0]
        response, qtype, rcode = self._resolve(packet, tcp)
        counter = metrics.child(qtype, rcode)
        counter.inc()
        if response is not None and rcode == NOERROR and self._prepared is not None:
            # Only answers from the zone are kept: their variety is bounded by the zone.
            if len(self._replay) >= REPLAY_ENTRIES:
                self._replay.clear()
            self._replay[key] = (response[2:], counter)
        return response

    def _resolve(self, packet: bytes, tcp: bool) -> tuple[bytes | None, int, int]:
        """(response, qtype, rcode) for metrics; the response is None for dropped packets."""
        try:
            query = parse_query(packet)
        except Drop:
            metrics.DROPPED.inc()
            return None, 0, -1
        except FormErr as err:
            flags = _QR | (err.flags & (_RD | 0x7800)) | FORMERR
            head = pack_header(err.qid, flags, 1 if err.question else 0, 0, 0, 0)
            return head + err.question, 0, FORMERR
        if tcp:
            limit = MAX_TCP
        else:
            limit = 512 if query.edns is None else min(query.edns, EDNS_PAYLOAD)
        try:
            response, rcode = self._answer(query, limit)
        except Exception as err:  # a bug: answer SERVFAIL (Thanos keeps its endpoints), say so
            self._failed(err)
            opt = _OPT if query.edns is not None else b""
            return self._bare(query, SERVFAIL, opt=opt, authoritative=False), query.qtype, SERVFAIL
        return response, query.qtype, rcode

    def _failed(self, err: Exception) -> None:
        metrics.INTERNAL_ERRORS.inc()
        reason = f"{type(err).__name__}: {err}"
        if reason != self.last_error:
            log.error("DNS answer failed, sent SERVFAIL: %s", reason, exc_info=err)
        self.last_error = reason

    def _answer(self, q: Query, limit: int) -> tuple[bytes, int]:
        opt = b""
        if q.edns is not None:
            if q.edns_version != 0:
                return self._bare(q, 0, opt=_OPT_BADVERS), 16
            opt = _OPT
        name = q.name
        in_zone = name is not None and (name == self.origin or name.endswith(self._suffix))
        if q.opcode != 0 or q.qclass not in (_IN, _ANY_CLASS) or not (in_zone or name is None):
            return self._bare(q, REFUSED, opt=opt, authoritative=False), REFUSED
        prepared = self._prepared
        if prepared is None:
            return self._bare(q, SERVFAIL, opt=opt, authoritative=False), SERVFAIL
        if name is None:  # a label with a '.' inside: no such name can exist here
            sections = prepared.nxdomain
        else:
            sections = prepared.sections(name, q.qtype)
        return self._full(q, sections, opt, limit), sections.rcode

    def _full(self, q: Query, s: Sections, opt: bytes, limit: int) -> bytes:
        flags = _QR | _AA | (q.flags & _RD) | s.rcode
        extra = 1 if opt else 0
        size = 12 + len(q.question) + len(opt)
        if size + len(s.body) <= limit:
            head = pack_header(q.qid, flags, 1, s.an, s.ns, s.ar + extra)
            return head + q.question + s.body + opt
        if size + len(s.without_additional) <= limit:
            # Thanos resolves SRV targets itself when the additional section is missing.
            head = pack_header(q.qid, flags, 1, s.an, s.ns, extra)
            return head + q.question + s.without_additional + opt
        metrics.TRUNCATED.inc()
        return pack_header(q.qid, flags | _TC, 1, 0, 0, extra) + q.question + opt

    @staticmethod
    def _bare(q: Query, rcode: int, *, opt: bytes, authoritative: bool = True) -> bytes:
        flags = _QR | (q.flags & (_RD | 0x7800)) | rcode | (_AA if authoritative else 0)
        return pack_header(q.qid, flags, 1, 0, 0, 1 if opt else 0) + q.question + opt

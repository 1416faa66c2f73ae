"""Answers prepared per zone version, so the hot path only joins bytes.

For each (name, type) asked, the answer, authority and additional sections are packed once
(with dnslib, lazily on first use) and reused until the zone is replaced. The sections are
packed after a lower-case copy of the question; every query's own question has the same
length, so compression pointers stay valid whatever the case the client used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from dnslib import AAAA as DAAAA
from dnslib import NS as DNS_NS
from dnslib import RR, DNSHeader, DNSQuestion, DNSRecord
from dnslib import SOA as DSOA
from dnslib import SRV as DSRV
from dnslib import A as DA
from dnslib.label import DNSBuffer

from dns_server.zone import AAAA, NS, SOA, SRV, A, Record, Zone

__all__ = ["ANY", "PreparedZone", "Sections"]

ANY = 255
NOERROR, NXDOMAIN = 0, 3


@dataclass(frozen=True, slots=True)
class Sections:
    rcode: int
    an: int
    ns: int
    ar: int
    body: bytes
    """Answer + authority + additional, packed after the question."""
    without_additional: bytes
    """The same with no additional records, for answers too big to carry them."""


def _rdata(r: Record) -> object:
    d = r.data
    if r.rtype == A:
        return DA(str(d[0]))
    if r.rtype == AAAA:
        return DAAAA(str(d[0]))
    if r.rtype == SRV:
        return DSRV(priority=int(d[0]), weight=int(d[1]), port=int(d[2]), target=str(d[3]))
    if r.rtype == NS:
        return DNS_NS(str(d[0]))
    if r.rtype == SOA:
        return DSOA(str(d[0]), str(d[1]), tuple(int(x) for x in d[2:7]))
    raise ValueError(f"no rdata for type {r.rtype}")


def _rr(r: Record) -> RR:
    return RR(r.name, r.rtype, ttl=r.ttl, rdata=_rdata(r))


class _ReachableNames(dict[tuple[bytes, ...], int]):
    """dnslib's compression table, keeping only offsets a 14-bit pointer can reach.

    dnslib records every name's offset, and past 16 KiB it writes pointers that wrap into
    garbage; large SRV answers (a few hundred clusters, over TCP) reach that.
    """

    def __setitem__(self, key: tuple[bytes, ...], offset: int) -> None:
        if offset < 0x4000:
            super().__setitem__(key, offset)


def _pack(record: DNSRecord) -> bytes:
    record.set_header_qa()
    buffer = DNSBuffer()
    buffer.names = _ReachableNames()
    record.header.pack(buffer)
    for section in (record.questions, record.rr, record.auth, record.ar):
        for item in section:
            item.pack(buffer)
    return bytes(buffer.data)


def _wire_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"


class PreparedZone:
    """A zone plus its lazily packed answers; replaced whole when the zone changes."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self._cache: dict[tuple[str, int], Sections] = {}
        self.negative_authority = self._soa_uncompressed()
        # One shared NXDOMAIN: caching per unknown name would let random names grow memory.
        self.nxdomain = Sections(
            NXDOMAIN, 0, 1, 0, self.negative_authority, self.negative_authority
        )

    def _soa_uncompressed(self) -> bytes:
        """The SOA for NXDOMAIN answers, without compression: it follows any question."""
        soa = self.zone.soa
        assert soa is not None
        mname, rname, *numbers = soa.data
        rdata = _wire_name(str(mname)) + _wire_name(str(rname))
        rdata += struct.pack("!IIIII", *(int(n) for n in numbers))
        return _wire_name(soa.name) + struct.pack("!HHIH", SOA, 1, soa.ttl, len(rdata)) + rdata

    def sections(self, name: str, qtype: int) -> Sections:
        """For a name in the zone: its answer, NODATA, or NXDOMAIN.

        An alias (``_thanos._tcp.…``) is answered with its ``_grpc._tcp.…`` twin's records
        under the name that was asked.
        """
        key = (name, qtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        source = name if name in self.zone.names else self.zone.canonical(name)
        if source is None:
            return self.nxdomain
        cached = self._cache[key] = self._pack(name, qtype, source)
        return cached

    def _pack(self, name: str, qtype: int, source: str) -> Sections:
        zone = self.zone
        types = zone.records.get(source, {})
        if qtype == ANY:
            answer = [r for rs in types.values() for r in rs]
        else:
            answer = list(types.get(qtype, ()))
        if source != name:
            answer = [replace(r, name=name) for r in answer]
        additional: list[Record] = []
        if qtype in (SRV, ANY):
            for r in answer:
                if r.rtype == SRV:
                    target = str(r.data[3])
                    additional += zone.records.get(target, {}).get(A, ())
                    additional += zone.records.get(target, {}).get(AAAA, ())
        authority: list[Record] = [zone.soa] if not answer and zone.soa is not None else []
        full = self._record(name, qtype, answer, authority, additional)
        bare = self._record(name, qtype, answer, authority, []) if additional else full
        question_len = len(_wire_name(name)) + 4
        return Sections(
            NOERROR,
            len(answer),
            len(authority),
            len(additional),
            full[12 + question_len :],
            bare[12 + question_len :],
        )

    @staticmethod
    def _record(
        name: str,
        qtype: int,
        answer: list[Record],
        authority: list[Record],
        additional: list[Record],
    ) -> bytes:
        reply = DNSRecord(DNSHeader(qr=1, aa=1), q=DNSQuestion(name, qtype))
        for r in answer:
            reply.add_answer(_rr(r))
        for r in authority:
            reply.add_auth(_rr(r))
        for r in additional:
            reply.add_ar(_rr(r))
        return _pack(reply)

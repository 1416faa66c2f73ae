"""Just enough DNS wire format to answer queries fast: parse one question and EDNS.

Anything a well-behaved client would not send is reported as ``FormErr`` (answered FORMERR)
or ``Drop`` (not answered at all: responses, runts), so hostile packets never raise further.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["OPT", "Drop", "FormErr", "Query", "pack_header", "parse_query"]

OPT = 41
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
MAX_NAME = 255


class Drop(Exception):
    """Not answerable: too short to carry an id, or a response rather than a query."""


class FormErr(Exception):
    """Malformed; carries what is needed to say so."""

    def __init__(self, qid: int, flags: int, question: bytes = b"") -> None:
        super().__init__("malformed query")
        self.qid, self.flags, self.question = qid, flags, question


@dataclass(frozen=True, slots=True)
class Query:
    qid: int
    flags: int
    opcode: int
    name: str | None
    """Lower-case absolute name; None when a label cannot be written as text (a '.' inside)."""
    qtype: int
    qclass: int
    question: bytes
    """The question exactly as sent (case preserved, for 0x20 clients)."""
    edns: int | None
    """The client's UDP payload size, or None without EDNS."""
    edns_version: int = 0
    dnssec_ok: bool = False


def parse_query(packet: bytes) -> Query:
    if len(packet) < 12:
        raise Drop
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(packet)
    if flags & 0x8000:
        raise Drop
    opcode = (flags >> 11) & 0xF
    if qdcount != 1:
        raise FormErr(qid, flags)
    offset, name = _parse_name(packet, 12, qid, flags)
    if offset + 4 > len(packet):
        raise FormErr(qid, flags)
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    question = packet[12 : offset + 4]
    offset += 4
    edns, version, do = None, 0, False
    if arcount and not ancount and not nscount:
        edns, version, do = _parse_opt(packet, offset, arcount, qid, flags, question)
    return Query(qid, flags, opcode, name, qtype, qclass, question, edns, version, do)


def _parse_name(packet: bytes, offset: int, qid: int, flags: int) -> tuple[int, str | None]:
    labels: list[bytes] = []
    length = 0
    while True:
        if offset >= len(packet):
            raise FormErr(qid, flags)
        size = packet[offset]
        if size == 0:
            offset += 1
            break
        if size > 63:  # compression pointer or reserved label type: never in a question
            raise FormErr(qid, flags)
        label = packet[offset + 1 : offset + 1 + size]
        if len(label) != size:
            raise FormErr(qid, flags)
        length += size + 1
        if length > MAX_NAME:
            raise FormErr(qid, flags)
        labels.append(label)
        offset += 1 + size
    if any(b"." in label for label in labels):
        return offset, None
    text = b".".join(labels).lower() + b"."
    try:
        return offset, text.decode("ascii")
    except UnicodeDecodeError:
        return offset, None


def _skip_name(packet: bytes, offset: int) -> int:
    while offset < len(packet):
        size = packet[offset]
        if size == 0:
            return offset + 1
        if size & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + size
    raise IndexError


def _parse_opt(
    packet: bytes, offset: int, arcount: int, qid: int, flags: int, question: bytes
) -> tuple[int | None, int, bool]:
    edns: int | None = None
    version, do = 0, False
    try:
        for _ in range(arcount):
            start = offset
            offset = _skip_name(packet, offset)
            rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(packet, offset)
            offset += _RR_FIXED.size + rdlen
            if offset > len(packet):
                raise IndexError
            if rtype == OPT:
                if edns is not None or packet[start] != 0:  # one OPT, owned by the root
                    raise FormErr(qid, flags, question)
                edns = max(512, rclass)
                version = (ttl >> 16) & 0xFF
                do = bool(ttl & 0x8000)
    except (IndexError, struct.error):
        raise FormErr(qid, flags, question) from None
    return edns, version, do


def pack_header(qid: int, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return _HEADER.pack(qid, flags, qd, an, ns, ar)

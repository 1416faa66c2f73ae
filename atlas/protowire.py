"""Protobuf's base-128 varint, the one piece of the wire format every hand-written encoder
needs (``xds_server.wire`` for ADS responses, ``atlas.thanos`` for the StoreAPI probe)."""

from __future__ import annotations

__all__ = ["read_varint", "varint"]

_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))
_INT64 = (1 << 64) - 1


def varint(value: int) -> bytes:
    """``value`` as a varint; a negative int64 is its two's complement, in ten bytes."""
    if 0 <= value < 0x80:  # tags and most lengths: the common case, no loop
        return _ONE_BYTE[value]
    value &= _INT64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at ``data[i:]`` and the offset after it; ValueError when it is cut short."""
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7

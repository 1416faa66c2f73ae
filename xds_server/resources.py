"""One xDS resource: serialized once, versioned by content, with the names it references.

Builders hand out ``Resource`` values; the cache and every stream reuse the same bytes, so a
resource is serialized exactly once however many Envoys receive it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

__all__ = [
    "Ref",
    "Resource",
    "content_version",
    "length_delimited",
    "make_resource",
    "resource_from_bytes",
]

Ref = tuple[str, str]
"""(type_url, name) of a resource another resource depends on."""


@dataclass(frozen=True)
class Resource:
    type_url: str
    name: str
    body: bytes = field(repr=False)
    version: str
    refs: frozenset[Ref] = frozenset()
    line: str = field(default="", repr=False, compare=False)
    """``name\0version``, precomputed for ``content_version`` (snapshots of 30,000 resources)."""

    def __post_init__(self) -> None:
        if not self.line:
            object.__setattr__(self, "line", f"{self.name}\0{self.version}")

    def to_any(self) -> AnyProto:
        return AnyProto(type_url=self.type_url, value=self.body)


def make_resource(type_url: str, name: str, message: Message, refs: Iterable[Ref] = ()) -> Resource:
    # Deterministic serialization: equal content must give equal bytes and thus equal
    # versions across processes, restarts and replicas.
    return resource_from_bytes(type_url, name, message.SerializeToString(deterministic=True), refs)


def resource_from_bytes(
    type_url: str, name: str, body: bytes, refs: Iterable[Ref] = ()
) -> Resource:
    version = hashlib.sha256(body).hexdigest()[:16]
    return Resource(type_url, name, body, version, frozenset(refs))


_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))


def _varint(value: int) -> bytes:
    if value < 0x80:  # tags and most lengths: the common case, no loop
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """One occurrence of a message field on the wire.

    A repeated message field is just its occurrences one after another, so a large message
    (a route table with one entry per cluster) can be assembled by joining cached entries
    instead of rebuilding and re-serializing every entry on each change.
    """
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def content_version(resources: Iterable[Resource]) -> str:
    """A version for a set of resources: a hash of their names and versions, order-free."""
    lines = sorted([r.line for r in resources])
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

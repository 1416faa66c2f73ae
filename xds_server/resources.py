"""One xDS resource: serialized once, versioned by content, with the names it references.

Builders hand out ``Resource`` values; the cache and every stream reuse the same bytes, so a
resource is serialized exactly once however many Envoys receive it.

Versions are content hashes, so equal content gives equal versions across processes, restarts
and replicas. A set of resources is versioned by the *sum* of its members' 64-bit digests:
order does not matter, and replacing one member of a 30,000-member set updates the sum in
constant time instead of re-hashing the whole set (``ResourceSet.patch``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

from xds_server import wire

__all__ = [
    "NO_REFS",
    "Refs",
    "Resource",
    "content_version",
    "make_resource",
    "refs",
    "resource_from_bytes",
    "resource_from_pieces",
    "total_version",
]

Refs = Mapping[str, frozenset[str]]
"""What a resource depends on: type_url → names of that type."""

NO_REFS: Refs = MappingProxyType({})

_MASK = (1 << 64) - 1
_ANY_TYPE_URL = wire.number(AnyProto, "type_url")
_ANY_VALUE = wire.number(AnyProto, "value")


def refs(*groups: tuple[str, Iterable[str]]) -> Refs:
    """``refs((CLUSTER, names), (SECRET, names))`` as a read-only mapping."""
    merged: dict[str, frozenset[str]] = {}
    for type_url, names in groups:
        names = frozenset(names)
        if names:
            earlier = merged.get(type_url)
            merged[type_url] = names if earlier is None else earlier | names
    return MappingProxyType(merged) if merged else NO_REFS


def _digest_of_version(version: str) -> int:
    """A version we made is 16 hex digits; anything else (a client's) is hashed to 64 bits."""
    if len(version) == 16:
        try:
            return int(version, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(version.encode(), digest_size=8).digest(), "big")


class Resource:
    """Immutable by convention: built once by a builder, then only read.

    A plain slotted class rather than a dataclass: the observability node alone holds tens of
    thousands, and construction cost is most of what a cold build does per resource.
    """

    __slots__ = ("_any_head", "_framed", "body", "digest", "name", "refs", "type_url", "version")

    type_url: str
    name: str
    body: bytes
    version: str
    digest: int
    """The version as a 64-bit number, summed into set versions."""
    refs: Refs

    def __init__(
        self,
        type_url: str,
        name: str,
        body: bytes,
        version: str,
        digest: int = -1,
        refs: Refs = NO_REFS,
    ) -> None:
        self.type_url = type_url
        self.name = name
        self.body = body
        self.version = version
        self.digest = digest if digest >= 0 else _digest_of_version(version)
        self.refs = refs
        self._any_head: bytes | None = None
        self._framed: tuple[int, bytes] | None = None

    def __repr__(self) -> str:
        return f"Resource({self.type_url.rpartition('.')[2]} {self.name!r} version={self.version})"

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return (
            isinstance(other, Resource)
            and self.type_url == other.type_url
            and self.name == other.name
            and self.version == other.version
            and self.body == other.body
        )

    def __hash__(self) -> int:
        return hash((self.type_url, self.name, self.version))

    def to_any(self) -> AnyProto:
        return AnyProto(type_url=self.type_url, value=self.body)

    @property
    def any_head(self) -> bytes:
        """This resource as a ``google.protobuf.Any`` is ``any_head + body``.

        Responses are written on the wire (``sotw.encode``, ``delta.encode``) without copying
        the body into an ``Any`` object first; the small head is computed once.
        """
        if self._any_head is None:
            value = wire.header(_ANY_VALUE, len(self.body)) if self.body else b""
            self._any_head = wire.text(_ANY_TYPE_URL, self.type_url) + value
        return self._any_head

    def framed(self, field_number: int) -> bytes:
        """This resource as one occurrence of the ``Any`` field ``field_number``, kept.

        For the large state-of-the-world sets (the observability node's 30,000 upstreams at
        10,000 clusters): a change of one cluster sends them all again, and joining kept
        entries is a fifth of framing each anew. Only large responses ask, so only their
        resources hold the extra copy.
        """
        if self._framed is None or self._framed[0] != field_number:
            head = self.any_head
            entry = wire.header(field_number, len(head) + len(self.body)) + head + self.body
            self._framed = (field_number, entry)
        return self._framed[1]


def make_resource(type_url: str, name: str, message: Message, needs: Refs = NO_REFS) -> Resource:
    # Deterministic serialization: equal content must give equal bytes and thus equal versions.
    return resource_from_bytes(type_url, name, message.SerializeToString(deterministic=True), needs)


def resource_from_bytes(type_url: str, name: str, body: bytes, needs: Refs = NO_REFS) -> Resource:
    h = hashlib.sha256(body)  # the body is not copied: it can be a 3 MB route table
    h.update(b"\0" + name.encode())
    head = h.digest()[:8]
    return Resource(type_url, name, body, head.hex(), int.from_bytes(head, "big"), needs)


def resource_from_pieces(
    type_url: str,
    name: str,
    pieces: Sequence[bytes],
    digests: Sequence[bytes | None],
    needs: Refs = NO_REFS,
) -> Resource:
    """A large body kept in pieces, some with their SHA-256 already known (``digests``, None
    for the others): the version hashes those digests in the pieces' stead, so a change
    hashes only the pieces it made. Without known digests this is ``resource_from_bytes``
    of the joined pieces; with them the version differs from that, so a resource must always
    be built the same way (the pieces themselves must be cut by content, see ``blocks``)."""
    h = hashlib.sha256()
    for piece, digest in zip(pieces, digests, strict=True):
        h.update(piece if digest is None else digest)
    h.update(b"\0" + name.encode())
    head = h.digest()[:8]
    body = b"".join(pieces)
    return Resource(type_url, name, body, head.hex(), int.from_bytes(head, "big"), needs)


def total_version(total: int) -> str:
    """The version of a set whose digests sum to ``total``, as 16 hex digits."""
    return f"{total & _MASK:016x}"


def content_version(resources: Iterable[Resource]) -> str:
    """A version for a set of resources: the same for the same members, in any order."""
    return total_version(sum(r.digest for r in resources))

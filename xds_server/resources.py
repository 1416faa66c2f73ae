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

__all__ = ["Ref", "Resource", "content_version", "make_resource"]

Ref = tuple[str, str]
"""(type_url, name) of a resource another resource depends on."""


@dataclass(frozen=True)
class Resource:
    type_url: str
    name: str
    body: bytes = field(repr=False)
    version: str
    refs: frozenset[Ref] = frozenset()

    def to_any(self) -> AnyProto:
        return AnyProto(type_url=self.type_url, value=self.body)


def make_resource(type_url: str, name: str, message: Message, refs: Iterable[Ref] = ()) -> Resource:
    # Deterministic serialization: equal content must give equal bytes and thus equal
    # versions across processes, restarts and replicas.
    body = message.SerializeToString(deterministic=True)
    version = hashlib.sha256(body).hexdigest()[:16]
    return Resource(type_url, name, body, version, frozenset(refs))


def content_version(resources: Iterable[Resource]) -> str:
    """A version for a set of resources: a hash of their names and versions, order-free."""
    digest = hashlib.sha256()
    for name, version in sorted((r.name, r.version) for r in resources):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(version.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]

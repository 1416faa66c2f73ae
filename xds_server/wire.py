"""Protobuf wire encoding for the messages built once per cluster, and for ADS responses.

At 10,000 clusters the observability node holds 30,000 upstreams, 20,000 virtual hosts and
20,000 prefix routes. Writing their few fields directly costs a small fraction of building
each as a protobuf object, and joining the bytes of a response carrying 30,000 resources a
small fraction of wrapping each in an ``Any`` (docs/BENCHMARKS.md, "xDS builders, before
and after").

Only small, flat messages are written here, field by field in field-number order with proto3
defaults left out, which is exactly what deterministic serialization produces
(``tests/xds_server/test_wire.py`` checks every encoder byte for byte against the protobuf
classes). Field numbers are read from the generated descriptors, never written down by hand.
"""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import Message

from atlas.protowire import varint

__all__ = ["delimited", "header", "number", "oneof_uint", "packed", "text"]

_TYPE_PREFIX = "type.googleapis.com/"


def packed(message: Message) -> any_pb2.Any:
    """An ``Any`` holding ``message``, serialized deterministically.

    ``Any.Pack`` is not deterministic: a map inside (a JSON log format's ``Struct``, per-filter
    configs) could come out in another order in another process, which would change the
    resource's version after a restart and push it again to every Envoy.
    """
    return any_pb2.Any(
        type_url=_TYPE_PREFIX + message.DESCRIPTOR.full_name,
        value=message.SerializeToString(deterministic=True),
    )


def number(message: type[Message], field: str) -> int:
    """A field's number, from the generated descriptor."""
    return int(message.DESCRIPTOR.fields_by_name[field].number)


def delimited(field_number: int, payload: bytes) -> bytes:
    """One occurrence of a message (or bytes) field.

    A repeated message field is just its occurrences one after another, so a large message
    (a route table with one entry per cluster) can be assembled by joining cached entries
    instead of rebuilding and re-serializing every entry on each change.
    """
    return header(field_number, len(payload)) + payload


def header(field_number: int, length: int) -> bytes:
    """The tag and length of a message field whose ``length`` bytes follow.

    Lets a nested message around a large payload (a certificate) be written as a list of
    pieces joined once at the end, instead of copying the payload at every level.
    """
    return varint(field_number << 3 | 2) + varint(length)


def text(field_number: int, value: str) -> bytes:
    """A string field; the empty string is proto3's default and is not written."""
    return delimited(field_number, value.encode()) if value else b""


def oneof_uint(field_number: int, value: int) -> bytes:
    """An unsigned varint that is a member of a oneof: written even when zero (it is set)."""
    return varint(field_number << 3) + varint(value)

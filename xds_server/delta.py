"""Incremental (delta) ADS: DeltaDiscoveryRequest/Response ↔ the shared stream state."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server import wire
from xds_server.bodies import LARGE, Bodies
from xds_server.stream import Push, Request, nack_message

__all__ = ["decode", "encode"]

_Response = discovery_pb2.DeltaDiscoveryResponse
_SYSTEM_VERSION = wire.number(_Response, "system_version_info")
_RESOURCES = wire.number(_Response, "resources")
_TYPE_URL = wire.number(_Response, "type_url")
_NONCE = wire.number(_Response, "nonce")
_REMOVED = wire.number(_Response, "removed_resources")
_VERSION = wire.number(discovery_pb2.Resource, "version")
_RESOURCE = wire.number(discovery_pb2.Resource, "resource")
_NAME = wire.number(discovery_pb2.Resource, "name")


def decode(req: discovery_pb2.DeltaDiscoveryRequest) -> Request:
    error = nack_message(req.error_detail, req.HasField("error_detail"))
    return Request(
        type_url=req.type_url,
        nonce=req.response_nonce,
        error=error,
        names=None,
        subscribe=tuple(req.resource_names_subscribe),
        unsubscribe=tuple(req.resource_names_unsubscribe),
        initial_versions=tuple(sorted(req.initial_resource_versions.items())),
    )


def encode(push: Push, bodies: Bodies | None = None) -> bytes:
    """A serialized DeltaDiscoveryResponse: only what changed, plus the names to drop.

    A response with the whole set (a first connect with nothing held) is the same for every
    stream sent that version, so a large one's resources come from ``bodies``.
    """
    whole = not push.removed and len(push.updated) == len(push.target)
    pieces = [wire.text(_SYSTEM_VERSION, push.version)]
    if bodies is not None and whole and len(push.updated) >= LARGE:
        pieces.append(bodies.get(("delta", push.type_url, push.version), lambda: _body(push)))
    else:
        _add_resources(pieces, push)
    pieces += (wire.text(_TYPE_URL, push.type_url), wire.text(_NONCE, push.nonce))
    pieces += (wire.delimited(_REMOVED, name.encode()) for name in push.removed)
    return b"".join(pieces)


def _body(push: Push) -> bytes:
    pieces: list[bytes] = []
    _add_resources(pieces, push)
    return b"".join(pieces)


def _add_resources(pieces: list[bytes], push: Push) -> None:
    for r in push.updated:
        head = r.any_head
        version = wire.text(_VERSION, r.version)
        name = wire.text(_NAME, r.name)
        packed = wire.header(_RESOURCE, len(head) + len(r.body))
        size = len(version) + len(packed) + len(head) + len(r.body) + len(name)
        pieces += (wire.header(_RESOURCES, size), version, packed, head, r.body, name)

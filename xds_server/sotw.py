"""State-of-the-world ADS: DiscoveryRequest/Response ↔ the shared stream state."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.service.discovery.v3 import discovery_pb2

from xds_server import wire
from xds_server.bodies import LARGE, Bodies
from xds_server.resources import Resource
from xds_server.stream import Push, Request, nack_message
from xds_server.types import PARTIAL_SOTW_TYPES

__all__ = ["decode", "encode"]

_Response = discovery_pb2.DiscoveryResponse
_VERSION = wire.number(_Response, "version_info")
_RESOURCES = wire.number(_Response, "resources")
_TYPE_URL = wire.number(_Response, "type_url")
_NONCE = wire.number(_Response, "nonce")


def decode(req: discovery_pb2.DiscoveryRequest) -> Request:
    error = nack_message(req.error_detail, req.HasField("error_detail"))
    return Request(
        type_url=req.type_url,
        nonce=req.response_nonce,
        error=error,
        names=tuple(req.resource_names),
        version_info=req.version_info,
    )


def encode(push: Push, bodies: Bodies | None = None) -> bytes:
    """A serialized DiscoveryResponse with the whole set, as state of the world means; for
    ``PARTIAL_SOTW_TYPES``, only the resources the client does not hold at their version.

    Written on the wire in field order (what deterministic serialization gives), each
    resource's bytes copied once, into the response. The resources sit between the version
    and the type and nonce, so a large set's bytes are taken from ``bodies`` when another
    stream was sent the same version.
    """
    pieces: list[bytes] = [wire.text(_VERSION, push.version)]
    if push.type_url in PARTIAL_SOTW_TYPES and len(push.updated) < len(push.target):
        _add_resources(pieces, push.updated)  # depends on what this client holds: not shared
    elif bodies is not None and len(push.target) >= LARGE:
        pieces.append(
            bodies.get(("sotw", push.type_url, push.version), lambda: _kept_resources(push))
        )
    else:
        _add_resources(pieces, (r for _, r in sorted(push.target.items())))
    pieces += (wire.text(_TYPE_URL, push.type_url), wire.text(_NONCE, push.nonce))
    return b"".join(pieces)


def _add_resources(pieces: list[bytes], resources: Iterable[Resource]) -> None:
    for r in resources:
        head = r.any_head
        pieces += (wire.header(_RESOURCES, len(head) + len(r.body)), head, r.body)


def _kept_resources(push: Push) -> bytes:
    """The same bytes as ``_resources``, from entries each resource keeps (``framed``)."""
    return b"".join([r.framed(_RESOURCES) for _, r in sorted(push.target.items())])

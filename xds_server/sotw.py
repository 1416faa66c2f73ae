"""State-of-the-world ADS: DiscoveryRequest/Response ↔ the shared stream state."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.stream import Push, Request, nack_message

__all__ = ["decode", "encode"]


def decode(req: discovery_pb2.DiscoveryRequest) -> Request:
    error = nack_message(req.error_detail, req.HasField("error_detail"))
    return Request(
        type_url=req.type_url,
        nonce=req.response_nonce,
        error=error,
        names=tuple(req.resource_names),
        version_info=req.version_info,
    )


def encode(push: Push) -> discovery_pb2.DiscoveryResponse:
    """The whole set every time: that is what state of the world means."""
    return discovery_pb2.DiscoveryResponse(
        version_info=push.version,
        type_url=push.type_url,
        nonce=push.nonce,
        resources=[r.to_any() for _, r in sorted(push.target.items())],
    )

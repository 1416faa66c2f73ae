"""Incremental (delta) ADS: DeltaDiscoveryRequest/Response ↔ the shared stream state."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.stream import Push, Request, nack_message

__all__ = ["decode", "encode"]


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


def encode(push: Push) -> discovery_pb2.DeltaDiscoveryResponse:
    """Only what changed, plus the names to drop."""
    return discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=push.version,
        type_url=push.type_url,
        nonce=push.nonce,
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=r.to_any())
            for r in push.updated
        ],
        removed_resources=list(push.removed),
    )

"""SDS secrets: a node's own certificate and the CA bundle, from PKI material handed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from xds_server.builders.common import BUNDLE_SECRET, IDENTITY_SECRET
from xds_server.resources import Resource, make_resource
from xds_server.types import SECRET

__all__ = ["NodeCredentials", "node_secrets"]


@dataclass(frozen=True)
class NodeCredentials:
    """PEM material for one node, read by the caller (builders do no I/O)."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    bundle_pem: bytes = b""


def node_secrets(creds: NodeCredentials) -> list[Resource]:
    return [_identity(creds.cert_pem, creds.key_pem), _bundle(creds.bundle_pem)]


@lru_cache(maxsize=16384)
def _identity(cert_pem: bytes, key_pem: bytes) -> Resource:
    identity = secret_pb2.Secret(
        name=IDENTITY_SECRET,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=cert_pem),
            private_key=base_pb2.DataSource(inline_bytes=key_pem),
        ),
    )
    return make_resource(SECRET, IDENTITY_SECRET, identity)


@lru_cache(maxsize=8)
def _bundle(bundle_pem: bytes) -> Resource:
    """One bundle for every node: built once, shared by all."""
    bundle = secret_pb2.Secret(
        name=BUNDLE_SECRET,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_bytes=bundle_pem)
        ),
    )
    return make_resource(SECRET, BUNDLE_SECRET, bundle)

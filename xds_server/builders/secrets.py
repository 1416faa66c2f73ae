"""SDS secrets: a node's own certificate and the CA bundle, from PKI material handed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from xds_server import wire
from xds_server.builders.common import BUNDLE_SECRET, IDENTITY_SECRET
from xds_server.resource_set import ResourceSet
from xds_server.resources import Resource, make_resource, resource_from_bytes
from xds_server.types import SECRET

__all__ = ["NodeCredentials", "secret_set"]

_SECRET_NAME = wire.number(secret_pb2.Secret, "name")
_TLS_CERTIFICATE = wire.number(secret_pb2.Secret, "tls_certificate")
_CHAIN = wire.number(common_pb2.TlsCertificate, "certificate_chain")
_PRIVATE_KEY = wire.number(common_pb2.TlsCertificate, "private_key")
_INLINE_BYTES = wire.number(base_pb2.DataSource, "inline_bytes")
_IDENTITY_NAME = wire.text(_SECRET_NAME, IDENTITY_SECRET)


@dataclass(frozen=True)
class NodeCredentials:
    """PEM material for one node, read by the caller (builders do no I/O)."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    bundle_pem: bytes = b""
    principal: str = ""
    """The URI SAN that admits this node's certificate where only current cluster members may
    go (the alert intake): its membership URI; "" means its identity (older credentials)."""


def secret_set(creds: NodeCredentials, identity: Resource | None = None) -> ResourceSet:
    """A node's own certificate and the trust bundle every node shares; ``identity``: the
    node's certificate already encoded from the same PEMs (kept from its last snapshot)."""
    if identity is None:
        identity = _identity(creds.cert_pem, creds.key_pem)
    return ResourceSet.of(SECRET, (identity, _bundle(creds.bundle_pem)))


def _identity(cert_pem: bytes, key_pem: bytes) -> Resource:
    """One per node, so written on the wire (see ``wire``) with a single copy of the PEMs."""
    chain = wire.header(_INLINE_BYTES, len(cert_pem))
    key = wire.header(_INLINE_BYTES, len(key_pem))
    chain_field = wire.header(_CHAIN, len(chain) + len(cert_pem))
    key_field = wire.header(_PRIVATE_KEY, len(key) + len(key_pem))
    size = len(chain_field) + len(chain) + len(cert_pem) + len(key_field) + len(key) + len(key_pem)
    body = b"".join(
        (
            _IDENTITY_NAME,
            wire.header(_TLS_CERTIFICATE, size),
            chain_field,
            chain,
            cert_pem,
            key_field,
            key,
            key_pem,
        )
    )
    return resource_from_bytes(SECRET, IDENTITY_SECRET, body)


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

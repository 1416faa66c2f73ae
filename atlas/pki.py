"""Atlas's own CA, per-identity leaves with SPIFFE URI SANs, renewal and CA rotation.

Private keys live only in ``Credential.key_pem``; it is excluded from ``repr`` and no message
built here mentions it, so logging a credential or an error never leaks a key.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atlas.errors import PKIError

__all__ = [
    "CONTROL_PLANE_URI",
    "MEMBERSHIP_PREFIX",
    "OBSERVABILITY_URI",
    "CAState",
    "Credential",
    "authority_key_id",
    "cluster_of",
    "cluster_uri",
    "create_ca",
    "cross_sign",
    "drop_previous",
    "issue",
    "membership_of",
    "membership_uri",
    "new_membership",
    "renewal_due",
    "rotate",
    "subject_key_id",
    "uri_of",
]

BACKDATE = timedelta(minutes=5)
"""Every certificate starts this long before it is issued, for peers whose clocks lag."""

SPIFFE_PREFIX = "spiffe://atlas/"
OBSERVABILITY_URI = "spiffe://atlas/observability"
CONTROL_PLANE_URI = "spiffe://atlas/control-plane"
"""Atlas's own gRPC server: downstream Envoys accept only this identity for ADS."""

MEMBERSHIP_PREFIX = "urn:atlas:member:"
"""A second URI SAN on a cluster's credentials: ``urn:atlas:member:<cluster>:<token>``.

The token is drawn when a cluster gets its first credential and kept by every renewal and
re-issue after a CA rotation; removing the cluster deletes its credentials, so adding it again
draws a new token. Whoever admits a cluster (Atlas's ADS server, the observability Envoy's alert
intake) accepts only the current token: a credential of an earlier membership of the same name
stays refused although the CA signed it and it has not expired. The SPIFFE ID stays the only
``spiffe://`` SAN, as X.509-SVIDs require."""

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def cluster_uri(name: str) -> str:
    return f"{SPIFFE_PREFIX}cluster/{name}"


def cluster_of(uri: str | None) -> str | None:
    """The cluster a ``spiffe://atlas/cluster/<name>`` identity names; None for any other."""
    prefix = f"{SPIFFE_PREFIX}cluster/"
    return uri.removeprefix(prefix) if uri is not None and uri.startswith(prefix) else None


def membership_uri(cluster: str, token: str) -> str:
    return f"{MEMBERSHIP_PREFIX}{cluster}:{token}"


def new_membership() -> str:
    """A fresh membership token: 64 random bits, as hex."""
    return secrets.token_hex(8)


def membership_of(cert: x509.Certificate) -> str:
    """The membership token a certificate carries; "" for one issued before tokens existed."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(MEMBERSHIP_PREFIX):
            return uri.rpartition(":")[2]
    return ""


def _now() -> datetime:
    return datetime.now(UTC)


def renewal_due(certificate: x509.Certificate) -> datetime:
    """When a third of the lifetime is left: from then on the leaf is re-issued. The
    lifetime counts from its issue, not from its backdated start: with the backdate in it, a
    leaf of under a quarter of an hour was due for renewal as it was issued, and in Kubernetes
    each renewal's write woke the next build (the randomized run's storm)."""
    not_after = certificate.not_valid_after_utc
    issued = certificate.not_valid_before_utc + BACKDATE
    return not_after - (not_after - min(issued, not_after)) / 3


@dataclass(frozen=True)
class Credential:
    """A certificate with its private key (PEM). ``repr`` never shows the key."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def uri(self) -> str | None:
        return uri_of(self.certificate)

    @cached_property
    def membership(self) -> str:
        """The membership token (see ``MEMBERSHIP_PREFIX``); "" when it carries none."""
        return membership_of(self.certificate)

    @cached_property
    def renew_from(self) -> datetime:
        return renewal_due(self.certificate)

    def needs_renewal(self, now: datetime | None = None) -> bool:
        """True with less than a third of the lifetime left (or already expired)."""
        return (now or _now()) > self.renew_from

    def issued_by(self, ca: x509.Certificate) -> bool:
        try:
            self.certificate.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def __repr__(self) -> str:
        subject = self.certificate.subject.rfc4514_string()
        return f"Credential(subject={subject!r}, uri={self.uri!r}, not_after={self.not_after})"


def subject_key_id(cert: x509.Certificate) -> str:
    """A CA's key identifier (hex): its SubjectKeyIdentifier, or the one its key implies."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()


def authority_key_id(cert: x509.Certificate) -> str | None:
    """The key identifier of the CA that signed ``cert`` (hex), when the certificate says."""
    try:
        value = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return value.key_identifier.hex() if value.key_identifier else None


def uri_of(cert: x509.Certificate) -> str | None:
    """The identity: the certificate's SPIFFE ID (its first URI SAN otherwise)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    found = spiffe or uris
    return found[0] if found else None


@dataclass(frozen=True)
class CAState:
    """The signing CA and the certificates of earlier CAs still trusted during a rotation."""

    current: Credential
    previous: tuple[bytes, ...] = ()
    cross_signed: bytes = b""
    """The current CA's certificate signed by the CA it replaced. A server adds it to its
    chain, so peers that only trust the old CA (a bootstrap bundle installed before the
    rotation) still verify it, while peers with the new bundle verify it directly."""

    @property
    def bundle_pem(self) -> bytes:
        """Trust bundle: current CA first, then every CA not yet dropped."""
        return self.current.cert_pem + b"".join(self.previous)


def _new_key(key_type: str) -> _PrivateKey:
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise PKIError(f"unknown key type {key_type!r} (use 'ecdsa' or 'rsa')")


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(cred: Credential) -> _PrivateKey:
    try:
        key = serialization.load_pem_private_key(cred.key_pem, password=None)
    except (ValueError, TypeError):
        # "from None": the parser's own message could quote bytes of the key.
        raise PKIError("CA private key could not be loaded") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PKIError("CA private key has an unsupported type")
    return key


def _as_ca(
    builder: x509.CertificateBuilder, public_key: Any, *, path_length: int
) -> x509.CertificateBuilder:
    """The extensions every Atlas CA certificate carries (roots and rotation bridges)."""
    return (
        builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=path_length), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def create_ca(
    *,
    key_type: str = "ecdsa",
    lifetime: timedelta = timedelta(days=3650),
    now: datetime | None = None,
) -> Credential:
    """A self-signed CA. Each generation gets its own subject so bundles stay unambiguous."""
    now = now or _now()
    key = _new_key(key_type)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Atlas"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Atlas CA {now:%Y%m%dT%H%M%S.%f}"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
    )
    # One level below the root: a future rotation's cross-signed bridge certificate.
    cert = _as_ca(builder, key.public_key(), path_length=1).sign(key, hashes.SHA256())
    return Credential(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: Credential,
    uri: str,
    *,
    server: bool = True,
    client: bool = True,
    lifetime: timedelta = timedelta(days=30),
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    key_type: str = "ecdsa",
    now: datetime | None = None,
    membership: str = "",
) -> Credential:
    """A leaf for one identity (URI SAN), for server and/or client authentication;
    ``membership`` adds a cluster's membership token (``MEMBERSHIP_PREFIX``)."""
    if not uri.startswith(SPIFFE_PREFIX):
        raise PKIError(f"identity {uri!r} is not under {SPIFFE_PREFIX}")
    if not (server or client):
        raise PKIError(f"certificate for {uri} must allow server or client use")
    now = now or _now()
    ca_key = _load_key(ca)
    key = _new_key(key_type)
    usages = [
        u
        for u, on in (
            (ExtendedKeyUsageOID.SERVER_AUTH, server),
            (ExtendedKeyUsageOID.CLIENT_AUTH, client),
        )
        if on
    ]
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    cluster = cluster_of(uri)
    if membership and cluster is not None:
        sans.append(x509.UniformResourceIdentifier(membership_uri(cluster, membership)))
    sans += [x509.DNSName(d) for d in dns_names]
    try:
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    except ValueError as err:
        raise PKIError(f"certificate for {uri}: {err}") from None
    ca_cert = ca.certificate
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, uri[-64:])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=key_type == "rsa",
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Credential(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def rotate(
    state: CAState, *, key_type: str = "ecdsa", lifetime: timedelta = timedelta(days=3650)
) -> CAState:
    """A new signing CA; the old one stays trusted until ``drop_previous``."""
    new = create_ca(key_type=key_type, lifetime=lifetime)
    return CAState(
        current=new,
        previous=(state.current.cert_pem, *state.previous),
        cross_signed=cross_sign(new, state.current),
    )


def cross_sign(ca: Credential, by: Credential) -> bytes:
    """``ca``'s certificate (same subject and key) issued by ``by``: a bridge between roots."""
    cert = ca.certificate
    signer = by.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(signer.subject)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(min(cert.not_valid_after_utc, signer.not_valid_after_utc))
    )
    signing_key = _load_key(by)
    bridge = (
        _as_ca(builder, cert.public_key(), path_length=0)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
        .sign(signing_key, hashes.SHA256())
    )
    return bridge.public_bytes(serialization.Encoding.PEM)


def drop_previous(state: CAState) -> CAState:
    """Stop trusting earlier CAs: only once every leaf has been re-issued."""
    return CAState(current=state.current)

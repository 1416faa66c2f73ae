"""Where PKI material is kept, and the manager that keeps every identity's credential fresh.

``PKIStore`` is the narrow contract; ``DirectoryStore`` backs ``--state-dir`` (the embedded
default) and the Kubernetes Secret store implements the same protocol. The manager issues a
credential on first use, re-issues it when a third of its life is left or when it was signed
by a CA that is no longer current, and never logs key material.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from atlas.bootstrap import CertPaths, credential_watch_files
from atlas.config import PKISettings
from atlas.errors import PKIError
from atlas.pki import (
    CAState,
    Credential,
    cluster_of,
    create_ca,
    drop_previous,
    issue,
    new_membership,
    rotate,
)

__all__ = [
    "CLUSTER_CREDENTIALS",
    "CertificateManager",
    "DirectoryStore",
    "PKIStore",
    "bootstrap_name",
    "leaf_name",
    "write_private",
]

CLUSTER_CREDENTIALS = ("node-", "bootstrap-")
"""Store-name prefixes of a cluster's two credentials: its data-plane leaf (pushed over SDS)
and its bootstrap credential (in its Helm values, for ADS)."""


def leaf_name(cluster: str) -> str:
    return f"{CLUSTER_CREDENTIALS[0]}{cluster}"


def bootstrap_name(node: str) -> str:
    return f"{CLUSTER_CREDENTIALS[1]}{node}"


log = logging.getLogger(__name__)

ROTATION_UNFINISHED = (
    "the previous CA is still trusted: Envoys installed before the last rotation trust only "
    "it, and a second rotation would cut them off. Finish the last one first (install every "
    "Envoy's new values, then `atlas ca drop-previous`), or force it"
)

_STORE_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,120}", re.ASCII)


class PKIStore(Protocol):
    """Persistence of the CA state and of named leaf credentials."""

    @property
    def location(self) -> str:
        """Where the material lives, for messages (never its content)."""
        ...

    def load_ca(self) -> CAState | None: ...
    def save_ca(self, state: CAState) -> None: ...
    def load(self, name: str) -> Credential | None: ...
    def save(self, name: str, credential: Credential) -> None: ...
    def delete(self, name: str) -> None:
        """Forget a credential (a removed cluster's): absent already is fine."""
        ...

    def names(self) -> tuple[str, ...]:
        """The names of every stored credential."""
        ...


def write_public(path: Path, data: bytes) -> None:
    """Write atomically (a rename into the directory), readable by all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600: a reader sees the old file or the new, never half."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class DirectoryStore:
    """``<state-dir>/pki/ca.crt, ca.key, ca-previous.pem`` and ``<name>.crt/.key`` per leaf."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir) / "pki"

    @property
    def location(self) -> str:
        return str(self.root.resolve())

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise PKIError(f"cannot read {self.root / name}: {err.strerror}") from None

    def load_ca(self) -> CAState | None:
        cert, key = self._read("ca.crt"), self._read("ca.key")
        if cert is None or key is None:
            return None
        previous = self._read("ca-previous.pem") or b""
        cross = self._read("ca-cross.pem") or b""
        return CAState(Credential(cert, key), tuple(_split_pem(previous)), cross)

    def save_ca(self, state: CAState) -> None:
        # Key before certificate: a crash in between leaves a key with no cert (regenerated),
        # never a certificate whose key is missing.
        write_private(self.root / "ca.key", state.current.key_pem)
        write_private(self.root / "ca.crt", state.current.cert_pem)
        write_private(self.root / "ca-previous.pem", b"".join(state.previous))
        write_private(self.root / "ca-cross.pem", state.cross_signed)

    def load(self, name: str) -> Credential | None:
        _check_name(name)
        cert, key = self._read(f"{name}.crt"), self._read(f"{name}.key")
        if cert is None or key is None:
            return None
        return Credential(cert, key)

    def save(self, name: str, credential: Credential) -> None:
        _check_name(name)
        write_private(self.root / f"{name}.key", credential.key_pem)
        write_private(self.root / f"{name}.crt", credential.cert_pem)

    def delete(self, name: str) -> None:
        _check_name(name)
        # Certificate first: a crash in between leaves a key without a certificate, which
        # ``load`` treats as absent, never a certificate that still looks current.
        for suffix in (".crt", ".key"):
            (self.root / f"{name}{suffix}").unlink(missing_ok=True)

    def names(self) -> tuple[str, ...]:
        if not self.root.is_dir():
            return ()
        return tuple(sorted(p.stem for p in self.root.glob("*.crt") if not p.name.startswith("ca")))


def _check_name(name: str) -> None:
    if _STORE_NAME.fullmatch(name) is None or ".." in name:
        raise PKIError(f"invalid credential name {name!r}")


def _split_pem(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() for p in data.split(marker) if p.strip()]
    return [p + b"\n" + marker + b"\n" for p in parts]


class CertificateManager:
    """Keeps the CA and every identity's credential present and fresh in a store."""

    def __init__(self, store: PKIStore, settings: PKISettings | None = None) -> None:
        self.store = store
        self.settings = settings or PKISettings()
        self._creating = threading.Lock()
        """The daemon's loop (its own server certificate) and the reconciler's thread both ask
        for the CA at a first start: without this each created one, and the replica served
        with the one whose write had failed while the API held the other."""

    def ca(self) -> CAState:
        state = self.store.load_ca()
        if state is not None:
            return state
        with self._creating:
            state = self.store.load_ca()  # created by the other caller meanwhile
            if state is None:
                state = CAState(
                    create_ca(key_type=self.settings.key_type, lifetime=self.settings.ca_lifetime)
                )
                self.store.save_ca(state)
                log.info("created CA %s", state.current.certificate.subject.rfc4514_string())
        return state

    def credential(
        self,
        name: str,
        uri: str,
        *,
        server: bool = True,
        client: bool = True,
        lifetime: timedelta | None = None,
        dns_names: tuple[str, ...] = (),
        now: datetime | None = None,
    ) -> Credential:
        """The stored credential ``name``, re-issued when missing, stale or from an old CA.

        A cluster's credential keeps its membership token through renewals and CA rotations;
        a first one draws a new token (see ``atlas.pki.MEMBERSHIP_PREFIX``)."""
        state = self.ca()
        current = self.store.load(name)
        reason = _reissue_reason(current, uri, state, now)
        if current is not None and reason is None:
            return current
        membership = ""  # not a cluster's identity: no token
        if current is not None and current.uri == uri:
            membership = current.membership
        elif cluster_of(uri) is not None:
            membership = new_membership()
        fresh = issue(
            state.current,
            uri,
            server=server,
            client=client,
            lifetime=lifetime or self.settings.leaf_lifetime,
            dns_names=dns_names,
            key_type=self.settings.key_type,
            now=now,
            membership=membership,
        )
        self.store.save(name, fresh)
        log.info("issued %s for %s (%s), valid until %s", name, uri, reason, fresh.not_after)
        return fresh

    def install_bootstrap(
        self, name: str, uri: str, directory: Path, *, lifetime: timedelta | None = None
    ) -> Path:
        """Write the bootstrap credential ``name`` and the trust bundle into ``directory`` as
        the chart mounts them (``tls.crt``, ``tls.key``, ``ca.crt``: ``bootstrap.CertPaths``),
        with the SDS files the bootstrap reads them through, for an Envoy run outside
        Kubernetes (the demo, the tests, the benchmarks). Each file is moved into place, which
        is what makes a running Envoy read a new credential."""
        credential = self.credential(name, uri, server=False, lifetime=lifetime)
        directory.mkdir(parents=True, exist_ok=True)
        write_public(directory / "tls.crt", credential.cert_pem)
        write_private(directory / "tls.key", credential.key_pem)
        write_public(directory / "ca.crt", self.ca().bundle_pem)
        for file, text in credential_watch_files(CertPaths(str(directory))).items():
            write_public(directory / file, text.encode())
        return directory

    def forget_cluster(self, cluster: str) -> bool:
        """Delete a removed cluster's credentials (its leaf and its bootstrap credential), so
        that adding it again draws a new membership and its old credentials stay refused.
        True when there was something to delete."""
        found = False
        for name in (leaf_name(cluster), bootstrap_name(cluster)):
            stored = self.store.load(name)
            # Only a credential of that cluster's identity: ``bootstrap-observability`` and
            # the like are not a cluster's, whatever their name looks like.
            if stored is not None and cluster_of(stored.uri) == cluster:
                self.store.delete(name)
                found = True
        if found:
            log.info("deleted the credentials of removed cluster %s", cluster)
        return found

    def rotate_ca(self, *, force: bool = False) -> CAState:
        """A new CA; the current one stays trusted (and signs the new one, the bridge that
        lets Envoys whose bootstrap trusts only it verify Atlas). Refused while an earlier
        rotation is not finished: the bridge reaches one CA back, so Envoys still on the
        oldest CA's bootstrap would be cut off at their next connection (found by the
        randomized run: two rotations in a row locked out every Envoy not re-installed)."""
        current = self.ca()
        if current.previous and not force:
            raise PKIError(ROTATION_UNFINISHED)
        state = rotate(current, key_type=self.settings.key_type, lifetime=self.settings.ca_lifetime)
        self.store.save_ca(state)
        log.info("rotated CA; %d previous CA(s) still trusted", len(state.previous))
        return state

    def drop_previous_cas(self) -> CAState:
        state = drop_previous(self.ca())
        self.store.save_ca(state)
        return state


def _reissue_reason(
    current: Credential | None, uri: str, state: CAState, now: datetime | None
) -> str | None:
    if current is None:
        return "new"
    if current.uri != uri:
        return "identity changed"
    if not current.issued_by(state.current.certificate):
        return "CA rotated"
    if current.needs_renewal(now):
        return "renewal"
    return None

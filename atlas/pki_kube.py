"""PKI material in Kubernetes Secrets: the same ``PKIStore`` contract as the state directory.

Names follow the instance (``atlas.instance``); with the default one:

* ``atlas-ca``: ``ca.crt``, ``ca.key``, ``ca-previous.pem`` (CAs still trusted during a rotation)
  and ``ca-cross.pem`` (the current CA signed by the one it replaced); the annotation
  ``goatlas.io/ca-rotate`` on it asks the leader to rotate.
* ``atlas-<name>`` (type kubernetes.io/tls) for every identity's credential.

goatlas.io/atlas kept its CA in the same Secret as ``ca.pem`` and ``ca-key.pem`` (RSA, PKCS#1)
with ``ca-previous.pem``. Atlas adopts that CA as it is, so downstream trust continues, and
never removes keys, labels or annotations it does not own: a rotation adds ``ca.crt``/``ca.key``
beside the Go project's keys, which stay for a rollback.

Reads come from the watch cache when one is given (every replica), writes go to the API and
only while ``may_write()`` says this replica leads: a follower never writes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable
from typing import Any

from atlas.errors import PKIError
from atlas.instance import InstanceNames
from atlas.kube import Kube, KubeError
from atlas.model import ANN_CA_ROTATE, LABEL_MANAGED_BY
from atlas.pki import CAState, Credential

__all__ = ["KubeSecretStore"]

_OWN_CA_KEYS = ("ca.crt", "ca.key", "ca-previous.pem", "ca-cross.pem")
_GOATLAS_CA_KEYS = ("ca.pem", "ca-key.pem")
"""goatlas.io/atlas's certificate and key in the same Secret."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else b""


def _split_pem(data: bytes) -> tuple[bytes, ...]:
    marker = b"-----END CERTIFICATE-----"
    return tuple(p.strip() + b"\n" + marker + b"\n" for p in data.split(marker) if p.strip())


class KubeSecretStore:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        *,
        names: InstanceNames | None = None,
        cached: Callable[[str], dict[str, Any] | None] | None = None,
        listed: Callable[[], Iterable[str]] | None = None,
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.kube, self.namespace = kube, namespace
        self.naming = names or InstanceNames()
        self.cached = cached
        self.listed = listed
        """The names of the Secrets in the watch cache (``names``); None: list them."""
        self.may_write = may_write
        self._written: dict[str, tuple[float, dict[str, Any] | None]] = {}
        """Our own writes (a body) and deletions (None), until the watch cache shows them."""

    @property
    def location(self) -> str:
        star = self.naming.credential_secret("*")
        return f"Secrets {self.namespace}/{self.naming.ca_secret} and {self.namespace}/{star}"

    def _get(self, name: str) -> dict[str, Any] | None:
        if self.cached is not None:
            seen = self.cached(name)
            written = self._written.get(name)
            if written is None:
                return seen
            # Our own write, until the watch cache has caught up with it (normally ms): without
            # this a leader would not see the CA it just created and create another one, or
            # would still find the credentials of a cluster it has just removed.
            at, body = written
            caught_up = (
                seen is None
                if body is None
                else (seen is not None and seen.get("data") == body["data"])
            )
            if caught_up or time.monotonic() - at > 30:
                del self._written[name]
                return seen
            return body
        try:
            return dict(
                self.kube.call(
                    f"get Secret {name}",
                    self.kube.core.read_namespaced_secret,
                    name,
                    self.namespace,
                )
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise PKIError(f"cannot read Secret {self.namespace}/{name}: {err.status}") from None

    def _put(
        self,
        name: str,
        data: dict[str, bytes],
        *,
        secret_type: str = "Opaque",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        if not self.may_write():
            raise PKIError(f"Secret {self.namespace}/{name}: only the leader writes")
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": secret_type,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {**(labels or {}), LABEL_MANAGED_BY: "atlas"},
                "annotations": annotations or {},
            },
            "data": {k: _b64(v) for k, v in data.items()},
        }
        before = self._written.get(name)
        self._written[name] = (time.monotonic(), body)
        try:
            self.kube.apply_secret(self.namespace, body)
        except KubeError as err:
            # Not written: reads must not return it as if it were (a CA held only here while
            # the API holds another would sign what no other replica trusts).
            if before is None:
                self._written.pop(name, None)
            else:
                self._written[name] = before
            raise PKIError(f"cannot write Secret {self.namespace}/{name}: {err.status}") from None

    def load_ca(self) -> CAState | None:
        obj = self._get(self.naming.ca_secret)
        if obj is None:
            return None
        data = obj.get("data") or {}
        cert, key = _unb64(data.get("ca.crt")), _unb64(data.get("ca.key"))
        if not cert or not key:
            cert, key = (_unb64(data.get(k)) for k in _GOATLAS_CA_KEYS)
        if not cert or not key:
            return None
        return CAState(
            Credential(cert, key),
            _split_pem(_unb64(data.get("ca-previous.pem"))),
            _unb64(data.get("ca-cross.pem")),
        )

    def rotation_requested(self) -> str | None:
        """The rotate annotation's value (``force`` forces it), None when there is none."""
        obj = self._get(self.naming.ca_secret)
        annotations = (obj or {}).get("metadata", {}).get("annotations") or {}
        value = annotations.get(ANN_CA_ROTATE)
        return None if value is None else str(value)

    def save_ca(self, state: CAState) -> None:
        # Writing the Secret without the rotate annotation acknowledges a rotation request;
        # whatever else is in it (goatlas.io/atlas's keys, labels, annotations) is kept.
        existing = self._get(self.naming.ca_secret) or {}
        meta = existing.get("metadata") or {}
        kept = {
            k: _unb64(v) for k, v in (existing.get("data") or {}).items() if k not in _OWN_CA_KEYS
        }
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k != ANN_CA_ROTATE
        }
        self._put(
            self.naming.ca_secret,
            {
                **kept,
                "ca.crt": state.current.cert_pem,
                "ca.key": state.current.key_pem,
                "ca-previous.pem": b"".join(state.previous),
                "ca-cross.pem": state.cross_signed,
            },
            labels=meta.get("labels") or {},
            annotations=annotations,
        )

    def load(self, name: str) -> Credential | None:
        obj = self._get(self.naming.credential_secret(name))
        if obj is None:
            return None
        data = obj.get("data") or {}
        cert, key = _unb64(data.get("tls.crt")), _unb64(data.get("tls.key"))
        return Credential(cert, key) if cert and key else None

    def save(self, name: str, credential: Credential) -> None:
        self._put(
            self.naming.credential_secret(name),
            {"tls.crt": credential.cert_pem, "tls.key": credential.key_pem},
            secret_type="kubernetes.io/tls",
        )

    def delete(self, name: str) -> None:
        secret = self.naming.credential_secret(name)
        if not self.may_write():
            raise PKIError(f"Secret {self.namespace}/{secret}: only the leader writes")
        self._written[secret] = (time.monotonic(), None)
        try:
            self.kube.call(
                f"delete Secret {secret}",
                self.kube.core.delete_namespaced_secret,
                secret,
                self.namespace,
            )
        except KubeError as err:
            if err.status != 404:
                raise PKIError(
                    f"cannot delete Secret {self.namespace}/{secret}: {err.status}"
                ) from None

    def names(self) -> tuple[str, ...]:
        if self.listed is not None:
            found: Iterable[str] = self.listed()
        else:
            listing = self.kube.call(
                "list Secrets", self.kube.core.list_namespaced_secret, self.namespace
            )
            found = (s["metadata"]["name"] for s in listing.get("items", []))
        prefix = self.naming.credential_prefix
        return tuple(
            sorted(
                n.removeprefix(prefix)
                for n in found
                if n.startswith(prefix) and n != self.naming.ca_secret
            )
        )

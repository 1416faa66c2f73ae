"""What the leader writes to Kubernetes: Events for invalid Services, per-cluster Helm values
Secrets (and the observability one), and CA rotation when the CA Secret asks for it.

Every method is idempotent and only called while this replica holds the Lease.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from atlas.bootstrap import (
    BootstrapSpec,
    bootstrap_spec,
    build_bootstrap,
    credential_watch_files,
)
from atlas.config import Settings
from atlas.errors import AtlasError, ManifestError, PKIError
from atlas.kube import Kube, KubeError
from atlas.model import (
    ANN_CA_ROTATE,
    LABEL_ENVOY_VALUES,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LAST_GOOD_KEY,
)
from atlas.pki import OBSERVABILITY_URI, CAState, Credential, cluster_uri
from atlas.pki_kube import KubeSecretStore
from atlas.pki_store import CertificateManager, bootstrap_name
from atlas.values import envoy_values, render

__all__ = [
    "ANN_BACKUP_OF",
    "FOREIGN_BACKUP_SUFFIX",
    "Reconciler",
    "bootstrap_files",
]

log = logging.getLogger(__name__)

EVENT_REASON = "InvalidClusterService"
FOREIGN_BACKUP_SUFFIX = "-goatlas"
ANN_BACKUP_OF = "goatlas.io/backup-of"
"""On a kept copy of a values Secret Atlas did not write: the Secret it was copied from."""


def _same_data(
    current: dict[str, Any] | None, files: dict[str, str], *, values: bool = True
) -> bool:
    """The Secret already holds exactly ``files``, labelled as Atlas's (and as Helm values,
    unless ``values`` is False)."""
    if current is None:
        return False
    labels = current.get("metadata", {}).get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != "atlas":
        return False
    if values and labels.get(LABEL_ENVOY_VALUES) != "true":
        return False
    data = current.get("data") or {}
    return data.keys() == files.keys() and all(
        isinstance(data[k], str) and base64.b64decode(data[k]) == v.encode()
        for k, v in files.items()
    )


def bootstrap_files(spec: BootstrapSpec, credential: Credential, ca: CAState) -> dict[str, str]:
    """What the observability Envoy's pod mounts: the files its bootstrap names."""
    return {
        "bootstrap.json": json.dumps(build_bootstrap(spec), indent=2, sort_keys=True),
        "ca.crt": ca.bundle_pem.decode(),
        "tls.crt": credential.cert_pem.decode(),
        "tls.key": credential.key_pem.decode(),
        **credential_watch_files(spec.certs),
    }


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        pki: CertificateManager,
        store: KubeSecretStore,
        settings: Settings,
        *,
        ads_address: str,
    ) -> None:
        self.kube, self.namespace, self.pki, self.store = kube, namespace, pki, store
        self.settings = settings
        self.names = settings.names
        self.ads_address = ads_address
        self._reported: set[str] = set()
        self._written: dict[str, tuple[bytes, bytes, str, int, int | None]] = {}
        """Per values Secret: the inputs of what was last written (bundle, cert, ADS address,
        Alertmanager replicas)."""
        self._bootstrap_seen: dict[str, tuple[Credential, bytes]] = {}

    def events(self, errors: tuple[AtlasError, ...], services: dict[str, dict[str, Any]]) -> None:
        """One Warning Event per new problem, on the Service it is about (a new leader finds
        the Events its predecessor recorded, and does not record them again)."""
        for err in errors:
            if not isinstance(err, ManifestError) or str(err) in self._reported:
                continue
            name = err.obj.rpartition("/")[2]
            message = f"{err.field}: {err.reason}"[:1000]
            if self._recorded(name, message):
                self._reported.add(str(err))
                continue
            uid = services.get(name, {}).get("metadata", {}).get("uid", "")
            if self._event("Service", name, EVENT_REASON, message, uid=uid):
                self._reported.add(str(err))

    def _event(self, kind: str, name: str, reason: str, message: str, *, uid: str = "") -> bool:
        """A Warning Event on the object ``kind``/``name``; False when it could not be made."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name[:200]}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": kind,
                "name": name,
                "namespace": self.namespace,
                "uid": uid,
            },
            "reason": reason,
            "type": "Warning",
            "message": message[:1000],
            "source": {"component": "atlas"},
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
        }
        try:
            self.kube.call(
                "create Event", self.kube.core.create_namespaced_event, self.namespace, event
            )
        except KubeError as e:
            log.warning("could not record an Event for %s %s: %s", kind, name, e)
            return False
        return True

    def _recorded(self, name: str, message: str) -> bool:
        try:
            found = self.kube.call(
                f"list Events of {name}",
                self.kube.core.list_namespaced_event,
                self.namespace,
                field_selector=f"involvedObject.name={name}",
            )
        except KubeError:
            return False
        return any(
            e.get("reason") == EVENT_REASON and e.get("message") == message
            for e in found.get("items", [])
        )

    def memory(self, text: str | None, secrets: dict[str, dict[str, Any]]) -> None:
        """Keep every cluster's last good definition in its Secret (``watchers.memory``), so
        that a replica that starts while a Service is invalid serves what the others do."""
        files = {LAST_GOOD_KEY: text} if text is not None else {}
        name = self.names.last_good
        if not files or _same_data(secrets.get(name), files, values=False):
            return
        self._write(name, files, values=False)

    def rotate_ca_if_requested(self) -> bool:
        """Rotate when the CA Secret asks (``goatlas.io/ca-rotate``). A request while an
        earlier rotation is unfinished is declined: the annotation is taken off (so it is
        not acted on later, unasked) and a Warning Event on the Secret says why."""
        request = self.store.rotation_requested()
        if request is None:
            return False
        try:
            state = self.pki.rotate_ca(force=request == "force")
        except PKIError as err:
            log.error("CA rotation requested and declined: %s", err)
            self.store.save_ca(self.pki.ca())  # acknowledges the request
            message = f"{err} (annotate it with {ANN_CA_ROTATE}=force)"
            self._event("Secret", self.names.ca_secret, "CARotationDeclined", message)
            return False
        log.info("CA rotated on request (%d previous CA(s) still trusted)", len(state.previous))
        return True

    def values(
        self,
        clusters: tuple[str, ...],
        secrets: dict[str, dict[str, Any]],
        *,
        alertmanager_replicas: int = 1,
    ) -> None:
        """A values Secret for every cluster and the observability Envoy (``atlas.instance``
        names them), the observability Envoy's bootstrap files; this instance's stale ones go.
        ``alertmanager_replicas``: the observability Alertmanagers each downstream relays to."""
        ports = self.settings.observability_ports
        names = self.names
        observability, bootstrap = names.observability_values, names.observability_bootstrap
        wanted: dict[str, tuple[str, str, str, int]] = {
            names.values_secret(c): (
                c,
                cluster_uri(c),
                self.settings.network.observability_address,
                ports.ads,
            )
            for c in clusters
        }
        host, _, port = self.ads_address.rpartition(":")
        wanted[observability] = (
            self.settings.observability_node,
            OBSERVABILITY_URI,
            host,
            int(port),
        )
        ca = self.pki.ca()
        for secret, (node, uri, ads_host, ads_port) in wanted.items():
            credential = self._bootstrap(node, uri, ca)
            relay = None if secret == observability else alertmanager_replicas
            inputs = (ca.bundle_pem, credential.cert_pem, ads_host, ads_port, relay)
            present = secret in secrets and (secret != observability or bootstrap in secrets)
            if self._written.get(secret) == inputs and present:
                continue
            spec = bootstrap_spec(self.settings, node, ads_host, ads_port)
            text = render(
                envoy_values(spec, credential, ca, alertmanager_replicas=relay),
                "raw",
                namespace=self.namespace,
                release="atlas-envoy",
            )
            if not _same_data(secrets.get(secret), {"values.yaml": text}):
                # A new leader renders exactly what its predecessor wrote: no write then, so
                # GitOps tools watching these Secrets see no change on a leader change.
                self._keep_foreign(secret, secrets)
                self._write(secret, {"values.yaml": text})
            if secret == observability:
                files = bootstrap_files(spec, credential, ca)
                if not _same_data(secrets.get(bootstrap), files):
                    self._write(bootstrap, files)
            self._written[secret] = inputs
        for name, obj in secrets.items():
            labels = obj.get("metadata", {}).get("labels") or {}
            stale = name not in wanted and name != bootstrap and names.owns(labels)
            if labels.get(LABEL_ENVOY_VALUES) == "true" and stale:
                self._delete(name)
                self._written.pop(name, None)

    def _bootstrap(self, node: str, uri: str, ca: CAState) -> Credential:
        """The node's bootstrap credential; the manager (parse, signature check) is asked
        only when the CA changed, renewal is due, or the stored one is no longer the one seen
        (gone with a removed cluster, whose next membership gets a new one)."""
        cached = self._bootstrap_seen.get(node)
        stored = self.store.load(bootstrap_name(node))
        if (
            cached is not None
            and cached[1] == ca.current.cert_pem
            and not cached[0].needs_renewal()
            and stored is not None
            and stored.cert_pem == cached[0].cert_pem
        ):
            return cached[0]
        credential = self.pki.credential(
            bootstrap_name(node), uri, server=False, lifetime=self.settings.pki.bootstrap_lifetime
        )
        self._bootstrap_seen[node] = (credential, ca.current.cert_pem)
        return credential

    def _keep_foreign(self, name: str, secrets: dict[str, dict[str, Any]]) -> None:
        """A values Secret Atlas did not write (goatlas.io/atlas wrote ``<cluster>-envoy-values``
        and ``atlas-envoy-values`` too) is copied to ``<name>-goatlas`` before Atlas replaces
        it, so the values its downstream Envoys run with are never lost (rollback)."""
        current = secrets.get(name)
        if current is None:
            return
        labels = current.get("metadata", {}).get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) == "atlas":
            return
        backup = f"{name}{FOREIGN_BACKUP_SUFFIX}"
        if backup in secrets:
            return
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": current.get("type", "Opaque"),
            "metadata": {
                "name": backup,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {ANN_BACKUP_OF: name},
            },
            "data": current.get("data") or {},
        }
        self.kube.apply_secret(self.namespace, body)
        secrets[backup] = body
        log.warning(
            "Secret %s was not written by Atlas (goatlas.io/atlas's values?): kept as %s "
            "before writing Atlas's values",
            name,
            backup,
        )

    def _write(self, name: str, files: dict[str, str], *, values: bool = True) -> None:
        labels = {LABEL_MANAGED_BY: "atlas", LABEL_INSTANCE: self.names.instance}
        if values:
            labels[LABEL_ENVOY_VALUES] = "true"
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in files.items()},
        }
        self.kube.apply_secret(self.namespace, body)
        log.info("wrote Secret %s", name)

    def _delete(self, name: str) -> None:
        try:
            self.kube.call(
                f"delete Secret {name}",
                self.kube.core.delete_namespaced_secret,
                name,
                self.namespace,
            )
            log.info("removed stale Helm values Secret %s", name)
        except KubeError as err:
            if err.status != 404:
                raise

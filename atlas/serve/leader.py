"""Leader election with a ``coordination.k8s.io/v1`` Lease.

Every replica serves ADS and DNS from its own watch cache; only the holder of the Lease writes
(Secrets, Events). The holder renews every ``retry_period``; a holder that has not renewed
within ``renew_deadline`` stops writing at once, before anyone else may take the Lease
(``lease_duration`` after its last renewal). Updates use the Lease's resourceVersion, so two
replicas cannot both win a race.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from atlas.config import LeaseSettings
from atlas.instance import DEFAULT_INSTANCE
from atlas.kube import Kube, KubeError, Outage
from atlas.serve import metrics

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        identity: str,
        settings: LeaseSettings | None = None,
        *,
        name: str = DEFAULT_INSTANCE,
    ) -> None:
        self.kube, self.namespace, self.identity = kube, namespace, identity
        self.settings = settings or LeaseSettings()
        self.name: str = self.settings.name or name
        """The Lease: ``lease.name`` if set, else the instance's."""
        self._leading_until: datetime | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.transitions: list[tuple[str, datetime]] = []

    def is_leader(self) -> bool:
        """True only while the last renewal is within the renew deadline."""
        with self._lock:
            return self._leading_until is not None and _now() < self._leading_until

    @property
    def stop_event(self) -> threading.Event:
        """Set by ``stop``: the thread running ``run`` ends (see ``atlas.supervisor``)."""
        return self._stop

    def run(self) -> None:
        outage = Outage(f"lease {self.name}", log)
        try:
            while not self._stop.is_set():
                try:
                    self._try()
                    outage.ok()
                except KubeError as err:
                    outage.failed(err)
                if not self.is_leader():
                    self._set_leading(None)
                self._stop.wait(self.settings.retry_period)
        finally:
            # However run ends (stopped, or a bug that the supervisor will restart it after),
            # this replica stops claiming to lead at once.
            self._release()

    def stop(self) -> None:
        self._stop.set()

    def _set_leading(self, until: datetime | None) -> None:
        with self._lock:
            was = self._leading_until is not None
            self._leading_until = until
        metrics.LEADER.set(1 if until is not None else 0)
        if was != (until is not None):
            state = "acquired" if until else "lost"
            self.transitions.append((state, _now()))
            log.info("%s the lease %s as %s", state, self.name, self.identity)

    def _try(self) -> None:
        s = self.settings
        api, name = self.kube.coordination, self.name
        now = _now()
        try:
            lease = self.kube.call("get Lease", api.read_namespaced_lease, name, self.namespace)
        except KubeError as err:
            if err.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, transitions=0, acquire=now),
            }
            self.kube.call("create Lease", api.create_namespaced_lease, self.namespace, body)
            self._set_leading(now + timedelta(seconds=s.renew_deadline))
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or datetime.min.replace(tzinfo=UTC)
        duration = spec.get("leaseDurationSeconds") or s.lease_duration
        expired = renewed + timedelta(seconds=float(duration)) < now
        if holder != self.identity and holder and not expired:
            return
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        acquire = now if holder != self.identity else (_parse(spec.get("acquireTime")) or now)
        lease["spec"] = self._spec(now, transitions=transitions, acquire=acquire)
        # resourceVersion stays in metadata: a concurrent update fails with 409, not a tie.
        self.kube.call("update Lease", api.replace_namespaced_lease, name, self.namespace, lease)
        self._set_leading(now + timedelta(seconds=s.renew_deadline))

    def _spec(self, now: datetime, *, transitions: int, acquire: datetime) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.settings.lease_duration),
            "acquireTime": _fmt(acquire),
            "renewTime": _fmt(now),
            "leaseTransitions": transitions,
        }

    def _release(self) -> None:
        """Stop leading; a replica that held the Lease lets the next one take it at once."""
        if not self.is_leader():
            self._set_leading(None)
            return
        self._set_leading(None)
        try:
            api = self.kube.coordination
            lease = self.kube.call(
                "get Lease", api.read_namespaced_lease, self.name, self.namespace
            )
            lease["spec"]["holderIdentity"] = ""
            self.kube.call(
                "update Lease",
                api.replace_namespaced_lease,
                self.name,
                self.namespace,
                lease,
            )
        except KubeError:
            pass

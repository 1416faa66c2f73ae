"""A first start in Kubernetes: the daemon's loop and the reconciler both ask for the CA. One
CA is created, and a write the API refused is never read back as if it had been made (the
randomized Kubernetes run against Envoy 1.36 caught a leader holding a CA for 30 s that the API
did not: the other replica's server certificate was then from a CA no Envoy trusted)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from atlas.errors import KubeError, PKIError
from atlas.kube import Kube
from atlas.pki import CAState, Credential
from atlas.pki_kube import KubeSecretStore
from atlas.pki_store import CertificateManager


class SlowStore:
    """A PKI store whose writes take a moment, as an API call does."""

    def __init__(self) -> None:
        self.saved: list[CAState] = []

    def load_ca(self) -> CAState | None:
        return self.saved[-1] if self.saved else None

    def save_ca(self, state: CAState) -> None:
        time.sleep(0.05)
        self.saved.append(state)

    def load(self, name: str) -> Credential | None:
        return None

    def save(self, name: str, credential: Credential) -> None:
        pass

    def delete(self, name: str) -> None:
        pass

    def names(self) -> tuple[str, ...]:
        return ()

    @property
    def location(self) -> str:
        return "memory"


def test_two_callers_at_a_first_start_get_one_ca() -> None:
    store = SlowStore()
    manager = CertificateManager(store)
    got: list[CAState] = []
    threads = [threading.Thread(target=lambda: got.append(manager.ca())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.saved) == 1
    assert {s.current.cert_pem for s in got} == {store.saved[0].current.cert_pem}


class RefusingKube:
    """Every write answers 409, as when another writer created the Secret first."""

    def apply_secret(self, namespace: str, body: dict[str, Any]) -> None:
        raise KubeError(f"create Secret {body['metadata']['name']}", 409, "AlreadyExists")


def test_a_refused_write_is_not_read_back() -> None:
    in_api: dict[str, dict[str, Any]] = {}
    store = KubeSecretStore(cast(Kube, RefusingKube()), "monitoring", cached=in_api.get)
    assert store.load_ca() is None
    with pytest.raises(PKIError, match="cannot write Secret monitoring/atlas-ca: 409"):
        CertificateManager(store).ca()
    assert store.load_ca() is None, "the CA that was never written is not the store's"

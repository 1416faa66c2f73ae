"""What the daemon says about itself: ``/status`` (JSON), ``/healthz`` (liveness) and
``/readyz`` (readiness).

* Live: every supervised task runs (none dead, none waiting to restart, none stuck in a build).
  A failing liveness probe makes Kubernetes restart the pod.
* Ready: the sources were read in full, snapshots were published and the last build succeeded.
  Until then the replica is left out of its Services, as it cannot serve what is current.
* Per node, ``serving`` is what this replica's snapshot holds and ``acked`` what the Envoy last
  ACKed (to this replica, or to any replica it held before: a reconnecting Envoy reports it);
  ``in_sync`` compares the two, so "healthy" is one comparison.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atlas.pki import Credential, subject_key_id
from xds_server.types import SHORT

if TYPE_CHECKING:
    from atlas.daemon import Atlas

__all__ = ["liveness", "readiness", "status_document"]


def liveness(atlas: Atlas) -> list[str]:
    return atlas.supervisor.problems()


def readiness(atlas: Atlas) -> list[str]:
    reasons = liveness(atlas)
    state = atlas.state
    if state is None or not state.synced:
        reasons.append("sources not fully read yet")
    publisher = atlas.publisher
    if publisher.builds == 0:
        reasons.append("no snapshot published yet")
    if publisher.last_error is not None:
        reasons.append(f"last build failed: {publisher.last_error}")
    return reasons


def status_document(atlas: Atlas) -> dict[str, Any]:
    state = atlas.state
    publisher = atlas.publisher
    return {
        "synced": bool(state and state.synced),
        "live": not liveness(atlas),
        "ready": not readiness(atlas),
        "problems": readiness(atlas),
        "clusters": [
            {
                "name": c.name,
                "replicas": c.replicas,
                "envoy_address": c.envoy_address,
                "group": c.group,
            }
            for c in (state.topology.clusters if state else ())
        ],
        "errors": list(state.messages) if state else [],
        "leader": atlas.may_write(),
        "ca": _ca(atlas),
        "dns": {"serial": atlas.dns.resolver.zone.serial if atlas.dns.resolver.zone else None},
        "publisher": {
            "generation": publisher.builds,
            "last_build_at": publisher.last_build_at,
            "last_error": publisher.last_error,
            "config_version": publisher.config_version,
            "source_version": publisher.source_version,
            "waiting_for_credentials": list(publisher.waiting),
        },
        "nodes": _nodes(atlas),
    }


def _nodes(atlas: Atlas) -> list[dict[str, Any]]:
    board = {n["node"]: n for n in atlas.board.snapshot()}
    result = []
    for node in sorted(set(board) | set(atlas.cache.nodes())):
        entry = board.get(node) or {
            "node": node,
            "connected": False,
            "protocol": "",
            "peer": "",
            "sent": {},
            "acked": {},
            "last_nack": None,
            "last_seen": None,
            "client_certificate": None,
        }
        snapshot = atlas.cache.snapshot(node)
        serving = (
            {SHORT.get(t, t): v for t, v in sorted(snapshot.versions.items())}
            if snapshot is not None
            else {}
        )
        entry["serving"] = serving
        entry["in_sync"] = bool(serving) and serving == entry["acked"]
        result.append(entry)
    return result


def _ca(atlas: Atlas) -> dict[str, Any] | None:
    """The key ids of the trusted CAs: a node's ``client_certificate.issuer_key_id`` among the
    previous ones still depends on them (``atlas ca drop-previous`` checks it)."""
    ca = atlas.pki.store.load_ca()
    if ca is None:
        return None
    return {
        "current_key_id": subject_key_id(ca.current.certificate),
        "previous_key_ids": [
            subject_key_id(Credential(pem, b"").certificate) for pem in ca.previous
        ],
        "expires": ca.current.not_after.isoformat(),
    }

"""A Kubernetes Service as the tests write one (to a manifest file or the API server): the
envelope once, the parts a test cares about as arguments."""

from __future__ import annotations

from typing import Any

__all__ = ["service_object"]


def service_object(
    name: str,
    *,
    namespace: str = "monitoring",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec or {}}

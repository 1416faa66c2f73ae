"""Helm values for one Envoy (downstream or observability), in three wrappings.

``raw`` is the values file for ``charts/envoy``; ``helm-chart`` wraps it in a k3s/RKE2
``HelmChart``; ``helm-release`` in a Flux ``HelmRelease``. The values carry the bootstrap and the
bootstrap credential (CA bundle, certificate, key) that the chart mounts as a Secret.
"""

from __future__ import annotations

from typing import Any

import yaml

from atlas.bootstrap import BootstrapSpec, build_bootstrap
from atlas.pki import CAState, Credential

__all__ = ["FORMATS", "envoy_values", "render"]

FORMATS = ("raw", "helm-chart", "helm-release")


def envoy_values(spec: BootstrapSpec, credential: Credential, ca: CAState) -> dict[str, Any]:
    return {
        "nodeId": spec.node_id,
        "certDir": spec.certs.directory,
        "bootstrap": build_bootstrap(spec),
        "certificates": {
            "ca.crt": ca.bundle_pem.decode(),
            "tls.crt": credential.cert_pem.decode(),
            "tls.key": credential.key_pem.decode(),
        },
        "certificateExpiry": credential.not_after.isoformat(),
    }


def render(values: dict[str, Any], fmt: str, *, namespace: str, release: str) -> str:
    """YAML text for ``fmt``; the key never leaves this function except in that text."""
    if fmt == "raw":
        doc: dict[str, Any] = values
    elif fmt == "helm-chart":
        doc = {
            "apiVersion": "helm.cattle.io/v1",
            "kind": "HelmChart",
            "metadata": {"name": release, "namespace": "kube-system"},
            "spec": {
                "chart": "envoy",
                "repo": "https://goatlas.io/charts",
                "targetNamespace": namespace,
                "valuesContent": _dump(values),
            },
        }
    elif fmt == "helm-release":
        doc = {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": release, "namespace": namespace},
            "spec": {
                "interval": "10m",
                "chart": {
                    "spec": {
                        "chart": "envoy",
                        "sourceRef": {"kind": "HelmRepository", "name": "atlas"},
                    }
                },
                "values": values,
            },
        }
    else:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return _dump(doc)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so PEM and nested YAML stay readable."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False)

"""Helm values for one Envoy (downstream or observability), in three wrappings.

``raw`` is the values file for ``charts/envoy``; ``helm-chart`` wraps it in a k3s/RKE2
``HelmChart``; ``helm-release`` in a Flux ``HelmRelease``. The values carry the bootstrap and the
bootstrap credential (CA bundle, certificate, key) that the chart mounts as a Secret.

The wrapped formats are objects a GitOps flow commits, so the credential is not in them: it
goes into a ``Secret`` printed beside them, which the HelmChart (``valuesSecrets``) or the
HelmRelease (``valuesFrom``) reads its values from. ``key_holders`` names the objects that hold
a private key, so that they can be encrypted (SOPS, sealed-secrets) instead of committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from atlas.bootstrap import BootstrapSpec, build_bootstrap, credential_watch_files
from atlas.config import ObservabilityPorts
from atlas.pki import CAState, Credential

__all__ = [
    "DEFAULT_CHART_REPOSITORY",
    "FORMATS",
    "SECRET_VALUES_KEY",
    "ChartRef",
    "credentials_secret",
    "envoy_values",
    "key_holders",
    "render",
    "ui_notes",
]

DEFAULT_CHART_REPOSITORY = "https://atlas-xds.github.io/charts"
"""Where ``--format helm-chart|helm-release`` expect charts/envoy, published; override it with
``--chart-repository`` when you host the chart yourself."""

FORMATS = ("raw", "helm-chart", "helm-release")
SECRET_VALUES_KEY = "values.yaml"
"""The key of the credentials Secret that holds its values (Flux's ``valuesKey`` default)."""
HELM_CHART_NAMESPACE = "kube-system"
"""Where k3s/RKE2 look for HelmChart objects; a ``valuesSecrets`` Secret must be beside it."""


def envoy_values(
    spec: BootstrapSpec,
    credential: Credential,
    ca: CAState,
    *,
    alertmanager_replicas: int | None = None,
) -> dict[str, Any]:
    """``alertmanager_replicas``: for a downstream Envoy, the observability Alertmanagers its
    alert relay offers (``alertmanager-<i>``); the chart's default of 1 would silently send
    every alert to replica 0 alone."""
    values: dict[str, Any] = {
        "nodeId": spec.node_id,
        "certDir": spec.certs.directory,
        "bootstrap": build_bootstrap(spec),
        "certificates": {
            "ca.crt": ca.bundle_pem.decode(),
            "tls.crt": credential.cert_pem.decode(),
            "tls.key": credential.key_pem.decode(),
            **credential_watch_files(spec.certs),
        },
        "certificateExpiry": credential.not_after.isoformat(),
    }
    if alertmanager_replicas is not None:
        values["alertmanagerReplicas"] = alertmanager_replicas
    return values


def ui_notes(cluster: str, ui_host: str, ports: ObservabilityPorts) -> str:
    """YAML comments: the flags that make a downstream's Prometheus and Alertmanager UIs work
    under ``/prom/<cluster>/`` and ``/am/<cluster>/`` on the observability Envoy.

    Envoy strips the prefix, so they serve at ``/`` (``--web.route-prefix=/``) while every
    link and asset they generate must carry it (``--web.external-url``); without both, the
    pages load but point outside the prefix.
    """
    prom = f"http://{ui_host}:{ports.prometheus_ui}/prom/{cluster}/"
    am = f"http://{ui_host}:{ports.alertmanager_ui}/am/{cluster}/"
    return "\n".join(
        [
            f"# Helm values for the Envoy of cluster {cluster!r} (charts/envoy).",
            f"# Its Prometheus and Alertmanager UIs are served at {prom} and {am}",
            "# (or your ingress's URL for those paths). For their pages to work there, run:",
            f"#   prometheus --web.external-url={prom} --web.route-prefix=/",
            f"#   alertmanager --web.external-url={am} --web.route-prefix=/",
            "# kube-prometheus-stack values:",
            f"#   prometheus.prometheusSpec.externalUrl: {prom}",
            "#   prometheus.prometheusSpec.routePrefix: /",
            f"#   alertmanager.alertmanagerSpec.externalUrl: {am}",
            "#   alertmanager.alertmanagerSpec.routePrefix: /",
            "",
        ]
    )


@dataclass(frozen=True)
class ChartRef:
    """Where the wrapped formats find ``charts/envoy``."""

    repository: str = DEFAULT_CHART_REPOSITORY
    version: str = ""
    name: str = "envoy"


def render(
    values: dict[str, Any],
    fmt: str,
    *,
    namespace: str,
    release: str,
    header: str = "",
    chart: ChartRef | None = None,
) -> str:
    """YAML text for ``fmt`` after ``header`` (YAML comments); the key never leaves this
    function except in that text."""
    chart = chart or ChartRef()
    if fmt == "raw":
        return header + _dump(values)
    public = {k: v for k, v in values.items() if k != "certificates"}
    secret_name = credentials_secret(release)
    if fmt == "helm-chart":
        spec: dict[str, Any] = {"chart": chart.name, "repo": chart.repository}
        if chart.version:
            spec["version"] = chart.version
        spec |= {
            "targetNamespace": namespace,
            "valuesContent": _dump(public),
            "valuesSecrets": [{"name": secret_name, "keys": [SECRET_VALUES_KEY]}],
        }
        helm_chart = {
            "apiVersion": "helm.cattle.io/v1",
            "kind": "HelmChart",
            "metadata": {"name": release, "namespace": HELM_CHART_NAMESPACE},
            "spec": spec,
        }
        secret = _secret(secret_name, HELM_CHART_NAMESPACE, values)
        return header + _dump(secret) + "---\n" + _dump(helm_chart)
    if fmt == "helm-release":
        source = {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": "atlas", "namespace": namespace},
            "spec": {"interval": "1h", "url": chart.repository},
        }
        chart_spec: dict[str, Any] = {
            "chart": chart.name,
            "sourceRef": {"kind": "HelmRepository", "name": "atlas"},
        }
        if chart.version:
            chart_spec["version"] = chart.version
        release_doc = {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": release, "namespace": namespace},
            "spec": {
                "interval": "10m",
                "chart": {"spec": chart_spec},
                "valuesFrom": [
                    {"kind": "Secret", "name": secret_name, "valuesKey": SECRET_VALUES_KEY}
                ],
                "values": public,
            },
        }
        secret = _secret(secret_name, namespace, values)
        docs = [secret, source, release_doc]
        return header + "---\n".join(_dump(d) for d in docs)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def credentials_secret(release: str) -> str:
    """The Secret the wrapped formats keep the Envoy's credential in."""
    return f"{release}-credentials"


def key_holders(fmt: str, namespace: str, release: str) -> list[str]:
    """The objects of ``fmt``'s output that hold a private key (to encrypt, not commit)."""
    if fmt == "raw":
        return ["the values themselves (certificates.tls.key)"]
    where = HELM_CHART_NAMESPACE if fmt == "helm-chart" else namespace
    return [f"Secret {where}/{credentials_secret(release)}"]


def _secret(name: str, namespace: str, values: dict[str, Any]) -> dict[str, Any]:
    """The credential, as values the chart merges over the rest."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {SECRET_VALUES_KEY: _dump({"certificates": values["certificates"]})},
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so PEM and nested YAML stay readable."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False)

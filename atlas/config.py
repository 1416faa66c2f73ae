"""Ports, addresses, lifetimes and timeouts: the one home of every tunable number.

Each field carries a docstring saying why it has its value. Chart values use the same names
(camelCased), so an operator can map a Helm value to a field here without grepping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

__all__ = [
    "DEFAULT_ADS_PORT",
    "DEFAULT_NAMESPACE",
    "DEFAULT_OBSERVABILITY_NODE",
    "DNSSettings",
    "DownstreamPorts",
    "ObservabilityPorts",
    "PKISettings",
    "Settings",
]

DEFAULT_NAMESPACE = "monitoring"
"""The Atlas namespace, as in goatlas.io/atlas."""

DEFAULT_OBSERVABILITY_NODE = "atlas"
"""Envoy node id of the observability proxy (goatlas.io/atlas's EnvoyADSObservabilityID)."""

DEFAULT_ADS_PORT = 18000
"""Atlas's own gRPC (ADS) port. The observability Envoy's 10900 passes TLS through to it."""


@dataclass(frozen=True, kw_only=True)
class ObservabilityPorts:
    """Listener ports of the observability Envoy (node ``atlas``)."""

    ads: int = 10900
    """Downstream Envoys' ADS connections, TLS passed through to Atlas."""
    thanos: int = 10901
    """Thanos StoreAPI from Thanos Query (h2c), routed by ``:authority``."""
    alertmanager_ui: int = 10902
    """``/am/<cluster>/`` to that downstream's Alertmanager UI."""
    alert_intake: int = 10903
    """Alerts from downstream Prometheus (mTLS) to local Alertmanager replica N."""
    prometheus_ui: int = 10904
    """``/prom/<cluster>/`` to that downstream's Prometheus UI."""


@dataclass(frozen=True, kw_only=True)
class DownstreamPorts:
    """Listener ports of every downstream Envoy (node ``<cluster>``)."""

    thanos: int = 11901
    """mTLS from the observability Envoy to the local Thanos sidecar."""
    alertmanager: int = 11902
    """mTLS to the local Alertmanager web UI."""
    alert_relay: int = 11903
    """Plain, in-cluster: local Prometheus sends alerts here, relayed over mTLS."""
    prometheus: int = 11904
    """mTLS to the local Prometheus web UI."""


@dataclass(frozen=True, kw_only=True)
class PKISettings:
    """Key types and certificate lifetimes."""

    key_type: str = "ecdsa"
    """``ecdsa`` (P-256, small and fast handshakes) or ``rsa`` (3072 bits)."""
    ca_lifetime: timedelta = timedelta(days=3650)
    """Long: rotating the CA is deliberate (``atlas ca rotate``)."""
    leaf_lifetime: timedelta = timedelta(days=30)
    """Short-lived data-plane leaves, renewed with a third of their life left, pushed over SDS."""
    bootstrap_lifetime: timedelta = timedelta(days=365)
    """The credential in a downstream's Helm values: re-installing values is manual, so long."""


@dataclass(frozen=True, kw_only=True)
class DNSSettings:
    """The authoritative zone ``atlas.``."""

    zone: str = "atlas."
    ttl: int = 30
    """Seconds; short so a removed cluster leaves resolvers' caches quickly."""
    negative_ttl: int = 5
    """SOA minimum: how long resolvers cache NXDOMAIN/NODATA."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything ``atlas serve`` needs, with defaults an operator can run with."""

    namespace: str = DEFAULT_NAMESPACE
    observability_node: str = DEFAULT_OBSERVABILITY_NODE
    observability_ports: ObservabilityPorts = field(default_factory=ObservabilityPorts)
    downstream_ports: DownstreamPorts = field(default_factory=DownstreamPorts)
    pki: PKISettings = field(default_factory=PKISettings)
    dns: DNSSettings = field(default_factory=DNSSettings)
    alertmanager_selector: str = "app=kube-prometheus-stack-alertmanager"
    """Label selector of the observability Alertmanager Services (one per replica)."""
    poll_interval: float = 0.25
    """Seconds between scans of a manifests directory: well inside the 1 s delivery promise."""

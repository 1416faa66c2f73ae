"""What ``atlas serve`` is started with: the settings, and what only its command line says."""

from __future__ import annotations

from dataclasses import dataclass, field

from atlas.config import DEFAULT_ADS_LISTEN, DEFAULT_DNS_LISTEN, DEFAULT_HTTP_LISTEN, Settings

__all__ = ["ServeOptions"]


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    source: str
    state_dir: str
    settings: Settings = field(default_factory=Settings)
    dns_addresses: tuple[str, ...] = ()
    """The observability Envoy's in-cluster address(es), answered as A/AAAA records."""
    ads_listen: str = DEFAULT_ADS_LISTEN
    ads_tls: bool = True
    """Mutual TLS on the gRPC port, with the node id checked against the certificate."""
    http_listen: str = DEFAULT_HTTP_LISTEN
    """Metrics and status; empty disables it."""
    dns_listen: tuple[str, ...] = (DEFAULT_DNS_LISTEN,)
    """DNS (UDP and TCP) HOST:PORT; unprivileged by default, the container uses port 53."""
    kubeconfig: str | None = None
    kube_context: str | None = None
    identity: str | None = None
    """This replica's name in the Lease (default: hostname and pid)."""
    control_plane_service: str | None = None
    """HOST:PORT of Atlas's gRPC as the observability Envoy sees it (its Helm values)."""
    debounce: float = 0.05
    debounce_max: float = 0.5
    refresh_interval: float = 300.0
    """Seconds between rebuilds without a change, at most: leaves are renewed in a rebuild,
    so it is also at most a sixth of the leaf lifetime (renewal starts with a third left)."""

"""Ports, addresses, lifetimes and timeouts: the one home of every tunable number.

Each field carries a docstring saying why it has its value. Chart values use the same names
(camelCased), so an operator can map a Helm value to a field here without grepping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from typing import Any, Final, Literal, TypeVar, get_args, get_origin, get_type_hints

from atlas.errors import ConfigError

__all__ = [
    "ACCESS_LOG_ALL",
    "ACCESS_LOG_ERRORS",
    "ACCESS_LOG_OFF",
    "BIND_ENVOY_ADDRESS",
    "DEFAULT_ADS_PORT",
    "DEFAULT_NAMESPACE",
    "DEFAULT_OBSERVABILITY_NODE",
    "AdsSettings",
    "DNSSettings",
    "DownstreamPorts",
    "EnvoySettings",
    "LeaseSettings",
    "NetworkSettings",
    "ObservabilityPorts",
    "PKISettings",
    "Settings",
    "WatchSettings",
    "settings_from_mapping",
]

_T = TypeVar("_T")

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


BIND_ENVOY_ADDRESS = "envoy-address"
"""``downstream_listen_address`` value: each downstream Envoy listens on its own envoy address,
so several can share one machine (tests, the demo)."""


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """Where the proxies listen and how they reach each other and Atlas."""

    observability_listen_address: str = "0.0.0.0"
    """Address the observability Envoy's listeners bind."""
    downstream_listen_address: str = "0.0.0.0"
    """Address downstream Envoys' listeners bind, or ``envoy-address`` (see BIND_ENVOY_ADDRESS)."""
    observability_address: str = "127.0.0.1"
    """Where downstream Envoys reach the observability Envoy (alert relay to 10903)."""
    control_plane_address: str = "127.0.0.1"
    """Where the observability Envoy reaches Atlas's gRPC port (10900 passes TLS through)."""
    control_plane_port: int = DEFAULT_ADS_PORT
    connect_timeout: float = 2.0
    """Seconds; cross-cluster dials fail fast so a dead cluster does not stall queries."""


ACCESS_LOG_ERRORS: Final = "errors"
ACCESS_LOG_ALL: Final = "all"
ACCESS_LOG_OFF: Final = "off"
AccessLogMode = Literal["errors", "all", "off"]
XdsApiType = Literal["GRPC", "DELTA_GRPC"]


@dataclass(frozen=True, kw_only=True)
class EnvoySettings:
    """What every proxy gets besides its routes: access logs, and its admin interface and
    certificate directory in the Helm values (Kubernetes mode writes those values itself)."""

    access_log: AccessLogMode = ACCESS_LOG_ERRORS
    """``errors``: one JSON line on stdout per failed request (HTTP 4xx/5xx, a response flag
    such as NR no route, a gRPC call not ending OK); ``all``: every request; ``off``."""
    admin_address: str = "127.0.0.1"
    """Envoy's admin interface: loopback, as it can change the proxy's state."""
    admin_port: int = 9901
    metrics_port: int = 9902
    """All addresses, ``/stats/prometheus`` and ``/ready`` only (scrapes and probes); 0: none."""
    cert_dir: str = "/etc/envoy/atlas"
    """Where the chart mounts the bootstrap credential in the Envoy pod."""
    peer_connections: int = 20_000
    """Per listener of the observability Envoy that downstream Envoys connect to (the ADS
    entry, the alert intake): one or two per cluster, with room for 10,000 clusters."""
    client_connections: int = 4_096
    """Per listener that clients in the observability cluster use (Thanos Query, the UIs)."""
    max_downstream_connections: int = 50_000
    """The observability Envoy's overload manager: connections on all listeners together."""
    max_heap_bytes: int = 0
    """The overload manager's heap limit (0: not watched). Set it to about 80 % of the pod's
    memory limit: at 90 % Envoy frees memory, at 95 % it stops keep-alive and at 98 % it
    answers 503 rather than being killed for memory."""
    max_request_headers_kb: int = 32
    """Request headers larger than this are refused (431): far above what Thanos, Prometheus,
    Alertmanager and browsers send, far below what would let one request hog memory."""
    request_headers_timeout: float = 10.0
    """Seconds a client has to send its request headers (a slow-loris client is cut off)."""
    ui_request_timeout: float = 300.0
    """Seconds a UI request may take in all (the longest Prometheus query worth waiting for);
    Thanos StoreAPI streams have none, alerts 30 s."""
    idle_timeout: float = 300.0
    """Seconds an HTTP connection may stay idle before Envoy closes it."""
    stream_buffer_bytes: int = 0
    """Per-connection buffer on the Thanos path (0: Envoy's 1 MiB): both Envoys' StoreAPI
    listeners and upstreams. It bounds what one hop has in flight (docs/BENCHMARKS.md)."""
    http2_stream_window: int = 0
    """HTTP/2 initial stream window on the Thanos path (0: Envoy's 256 MiB)."""
    http2_connection_window: int = 0
    """HTTP/2 initial connection window on the Thanos path (0: Envoy's 256 MiB)."""
    observability_api_type: XdsApiType = "GRPC"
    """How the observability Envoy's bootstrap subscribes: ``GRPC`` (state of the world) or
    ``DELTA_GRPC``. Beyond a few thousand clusters use delta: under state of the world a
    cluster added or removed sends it the whole cluster list again (about 15 MB at 10,000
    clusters); route tables go only when changed either way, and a one-cluster change
    reaches it with a p99 of 15-44 ms (state of the world) or 16-23 ms (delta)
    (bench/xds_storm.py, docs/BENCHMARKS.md)."""


@dataclass(frozen=True, kw_only=True)
class AdsSettings:
    """What one downstream identity may ask of Atlas's gRPC port: enough for any Envoy, too
    little for one misbehaving cluster to slow the others (``xds_server.admission``)."""

    streams_per_node: int = 3
    """An Envoy holds one ADS stream; a reconnect may briefly overlap the one it replaces."""
    streams_per_observability_node: int = 16
    """Every replica of the observability Envoy connects as the same node."""
    requests_per_second: float = 20.0
    """Sustained requests per stream; an Envoy sends a handful per change."""
    request_burst: int = 200
    """Requests a stream may send at once (a reconnecting Envoy subscribes to every type)."""
    throttled_for: float = 10.0
    """Seconds a stream may stay over its rate (slowed down) before it is ended."""
    max_request_bytes: int = 8 * 1024 * 1024
    """Largest request: a delta reconnect of the observability Envoy at 10,000 clusters lists
    every resource it holds, about 2 MB."""
    max_streams_per_connection: int = 8
    """HTTP/2 streams one connection may hold open."""


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
    """The authoritative zone ``atlas.`` (names are fixed: see ``dns_server.zone``)."""

    ttl: int = 30
    """Seconds; short so a removed cluster leaves resolvers' caches quickly."""
    negative_ttl: int = 5
    """SOA minimum: how long resolvers cache NXDOMAIN/NODATA."""


@dataclass(frozen=True, kw_only=True)
class LeaseSettings:
    """Leader election (``coordination.k8s.io/v1`` Lease) among Atlas replicas."""

    name: str = "atlas"
    lease_duration: float = 15.0
    """Seconds others wait after the holder's last renewal before taking over."""
    renew_deadline: float = 10.0
    """A holder that could not renew for this long stops writing (shorter than the duration)."""
    retry_period: float = 2.0
    """How often the holder renews and the others try."""


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    """Kubernetes list/watch behaviour."""

    watch_timeout: int = 240
    """Seconds a watch stays open server-side; shorter than proxies' idle cut-offs."""
    backoff_initial: float = 0.2
    """First retry quickly: most failures are a restarting API server."""
    backoff_max: float = 10.0
    """Never wait longer than this between attempts."""
    jitter: float = 0.5
    """Up to this fraction is added at random, so replicas do not retry in lockstep."""
    reconcile_interval: float = 5.0
    """Seconds between the leader's passes over Events, values Secrets and CA rotation."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything ``atlas serve`` needs, with defaults an operator can run with."""

    namespace: str = DEFAULT_NAMESPACE
    observability_node: str = DEFAULT_OBSERVABILITY_NODE
    observability_ports: ObservabilityPorts = field(default_factory=ObservabilityPorts)
    downstream_ports: DownstreamPorts = field(default_factory=DownstreamPorts)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    pki: PKISettings = field(default_factory=PKISettings)
    dns: DNSSettings = field(default_factory=DNSSettings)
    envoy: EnvoySettings = field(default_factory=EnvoySettings)
    ads: AdsSettings = field(default_factory=AdsSettings)
    alertmanager_selector: str = "app=kube-prometheus-stack-alertmanager"
    """Label selector of the observability Alertmanager Services (one per replica)."""
    envoy_selector: str = "app=envoy,release=atlas"
    """Labels of the observability Envoy Service, whose ClusterIP(s) DNS answers."""
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    poll_interval: float = 0.25
    """Seconds between scans of a manifests directory: well inside the 1 s delivery promise."""

    def __hash__(self) -> int:
        # Builders are memoized on their arguments, settings among them: computing this hash
        # over every nested field once, not on each of thousands of lookups per build.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached


def settings_from_mapping(data: Mapping[str, Any], *, source: str = "config") -> Settings:
    """Settings from a YAML/JSON mapping with the field names above (durations in seconds).

    Unknown keys and wrong types are errors naming the key, so a typo is never ignored.
    """
    return _build(Settings, data, source)


def _build(cls: type[_T], data: Any, path: str) -> _T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: must be a mapping")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            raise ConfigError(f"{path}.{key}: unknown setting (known: {', '.join(sorted(known))})")
        values[key] = _value(hints[key], raw, f"{path}.{key}")
    return cls(**values)


def _value(hint: Any, raw: Any, path: str) -> Any:
    if is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, raw, path)
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if raw not in choices:
            raise ConfigError(f"{path}: must be one of {', '.join(map(str, choices))}")
        return raw
    if hint is timedelta:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
            raise ConfigError(f"{path}: must be a positive number of seconds")
        return timedelta(seconds=raw)
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(f"{path}: must be a number")
        return float(raw)
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"{path}: must be a whole number")
        return raw
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{path}: must be a string")
        return raw
    raise ConfigError(f"{path}: unsupported setting type")

"""Ports, addresses, lifetimes and timeouts: the one home of every tunable number.

Each field carries a docstring saying why it has its value. Chart values use the same names
(camelCased), so an operator can map a Helm value to a field here without grepping.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from typing import (
    Annotated,
    Any,
    Final,
    Literal,
    TypeVar,
    get_args,
    get_origin,
    get_type_hints,
)

from atlas.errors import ConfigError
from atlas.instance import DEFAULT_INSTANCE, InstanceNames
from atlas.names import is_dns_label, is_hostname, is_ip

__all__ = [
    "ACCESS_LOG_ALL",
    "ACCESS_LOG_ERRORS",
    "ACCESS_LOG_OFF",
    "ALL_ADDRESSES",
    "BIND_ENVOY_ADDRESS",
    "DEFAULT_ADS_LISTEN",
    "DEFAULT_ADS_PORT",
    "DEFAULT_DNS_LISTEN",
    "DEFAULT_DNS_PORT",
    "DEFAULT_HTTP_LISTEN",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_NAMESPACE",
    "DEFAULT_OBSERVABILITY_NODE",
    "LOCAL_STATUS_URL",
    "LOOPBACK",
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
    "check_settings",
    "settings_from_mapping",
    "settings_schema",
]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Range:
    """What a number setting allows, declared on its type (``Annotated[int, Range(...)]``)
    so the loader checks every field the same way and the message says what is allowed."""

    low: float | None = None
    high: float | None = None
    exclusive_low: bool = False
    """``low`` itself is not allowed (a positive interval: more than 0)."""
    zero_means: str = ""
    """0 is allowed outside the range and means this (``0: none``)."""

    def allows(self, value: float) -> bool:
        if self.zero_means and value == 0:
            return True
        if self.low is not None and (
            value < self.low or (self.exclusive_low and value == self.low)
        ):
            return False
        return self.high is None or value <= self.high

    def describe(self, unit: str) -> str:
        if self.low is not None and self.high is not None:
            text = f"{unit} {_num(self.low)}..{_num(self.high)}"
        elif self.low is not None:
            text = f"{unit} {'>' if self.exclusive_low else '>='} {_num(self.low)}"
        else:
            text = unit
        return f"{text} (or 0: {self.zero_means})" if self.zero_means else text


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


Port = Annotated[int, Range(1, 65535)]
"""A TCP port a listener binds."""
Seconds = Annotated[float, Range(0, exclusive_low=True)]
"""An interval or timeout: more than 0 (0 would be a busy loop or no wait at all)."""
Rate = Annotated[float, Range(0, exclusive_low=True)]
"""Per second: more than 0."""
Count = Annotated[int, Range(1)]
"""A limit that must let at least one through."""
TTL = Annotated[int, Range(0, 2**31 - 1)]
"""A DNS TTL: RFC 2181 allows 0..2^31-1 seconds."""

DEFAULT_NAMESPACE = "monitoring"
"""The Atlas namespace, as in goatlas.io/atlas."""

DEFAULT_OBSERVABILITY_NODE = "atlas"
"""Envoy node id of the observability proxy (goatlas.io/atlas's EnvoyADSObservabilityID)."""

DEFAULT_ADS_PORT = 18000
"""Atlas's own gRPC (ADS) port. The observability Envoy's 10900 passes TLS through to it."""
DEFAULT_HTTP_PORT = 9180
"""Atlas's ``/metrics``, ``/status``, ``/healthz`` and ``/readyz``."""
DEFAULT_DNS_PORT = 5353
"""Atlas's DNS, unprivileged (the chart's Service maps 53 to it)."""
ALL_ADDRESSES = "0.0.0.0"
LOOPBACK = "127.0.0.1"
DEFAULT_ADS_LISTEN = f"{ALL_ADDRESSES}:{DEFAULT_ADS_PORT}"
DEFAULT_HTTP_LISTEN = f"{LOOPBACK}:{DEFAULT_HTTP_PORT}"
DEFAULT_DNS_LISTEN = f"{ALL_ADDRESSES}:{DEFAULT_DNS_PORT}"
LOCAL_STATUS_URL = f"http://{LOOPBACK}:{DEFAULT_HTTP_PORT}/status"
"""Where ``atlas status`` and ``atlas ca drop-previous`` look by default."""


@dataclass(frozen=True, kw_only=True)
class ObservabilityPorts:
    """Listener ports of the observability Envoy (node ``atlas``)."""

    ads: Port = 10900
    """Downstream Envoys' ADS connections, TLS passed through to Atlas."""
    thanos: Port = 10901
    """Thanos StoreAPI from Thanos Query (h2c), routed by ``:authority``."""
    alertmanager_ui: Port = 10902
    """``/am/<cluster>/`` to that downstream's Alertmanager UI."""
    alert_intake: Port = 10903
    """Alerts from downstream Prometheus (mTLS) to local Alertmanager replica N."""
    prometheus_ui: Port = 10904
    """``/prom/<cluster>/`` to that downstream's Prometheus UI."""


@dataclass(frozen=True, kw_only=True)
class DownstreamPorts:
    """Listener ports of every downstream Envoy (node ``<cluster>``)."""

    thanos: Port = 11901
    """mTLS from the observability Envoy to the local Thanos sidecar."""
    alertmanager: Port = 11902
    """mTLS to the local Alertmanager web UI."""
    alert_relay: Port = 11903
    """Plain, in-cluster: local Prometheus sends alerts here, relayed over mTLS."""
    prometheus: Port = 11904
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
    control_plane_port: Port = DEFAULT_ADS_PORT
    connect_timeout: Seconds = 2.0
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
    admin_port: Annotated[int, Range(1, 65535, zero_means="Envoy picks one")] = 9901
    metrics_port: Annotated[int, Range(1, 65535, zero_means="none")] = 9902
    """All addresses, ``/stats/prometheus`` and ``/ready`` only (scrapes and probes); 0: none."""
    cert_dir: str = "/etc/envoy/atlas"
    """Where the chart mounts the bootstrap credential in the Envoy pod."""
    peer_connections: Count = 20_000
    """Per listener of the observability Envoy that downstream Envoys connect to (the ADS
    entry, the alert intake): one or two per cluster, with room for 10,000 clusters."""
    client_connections: Count = 4_096
    """Per listener that clients in the observability cluster use (Thanos Query, the UIs)."""
    max_downstream_connections: Count = 50_000
    """Every Envoy's overload manager: connections on all its listeners together."""
    max_heap_bytes: Annotated[int, Range(1 << 20, zero_means="not watched")] = 0
    """The observability Envoy's heap limit (0: not watched). Set it to about 80 % of the
    pod's memory limit: at 90 % Envoy frees memory, at 95 % it stops keep-alive and at 98 %
    it answers 503 rather than being killed for memory. (A downstream Envoy's pod limit is
    its own chart's, which Atlas does not know: its heap is not watched.)"""
    max_request_headers_kb: Annotated[int, Range(1, 8192)] = 32
    """Request headers larger than this are refused (431): far above what Thanos, Prometheus,
    Alertmanager and browsers send, far below what would let one request hog memory."""
    request_headers_timeout: Seconds = 10.0
    """Seconds a client has to send its request headers (a slow-loris client is cut off)."""
    ui_request_timeout: Seconds = 300.0
    """Seconds a UI request may take in all (the longest Prometheus query worth waiting for);
    Thanos StoreAPI streams have none, alerts 30 s."""
    idle_timeout: Seconds = 300.0
    """Seconds an HTTP connection may stay idle before Envoy closes it."""
    stream_buffer_bytes: Annotated[int, Range(1024, zero_means="Envoy's 1 MiB")] = 0
    """Per-connection buffer on the Thanos path (0: Envoy's 1 MiB): both Envoys' StoreAPI
    listeners and upstreams. It bounds what one hop has in flight (docs/BENCHMARKS.md)."""
    http2_stream_window: Annotated[int, Range(65535, 2**31 - 1, zero_means="Envoy's")] = 0
    """HTTP/2 initial stream window on the Thanos path (0: Envoy's 256 MiB)."""
    http2_connection_window: Annotated[int, Range(65535, 2**31 - 1, zero_means="Envoy's")] = 0
    """HTTP/2 initial connection window on the Thanos path (0: Envoy's 256 MiB)."""
    ads_retry_max: Annotated[float, Range(0.5, 30)] = 5.0
    """Seconds at most between a proxy's attempts to reach Atlas again (its bootstrap's ADS
    retry back-off, from 0.5 s doubling, jittered). Envoy's own cap is 30 s: after an outage of
    Atlas a proxy could wait that long before it took changes again. Lower means more
    attempts while no replica answers, each refused at connect."""
    observability_api_type: XdsApiType = "GRPC"
    """How the observability Envoy's bootstrap subscribes: ``GRPC`` (state of the world) or
    ``DELTA_GRPC``. Beyond a few thousand clusters use delta: under state of the world a
    cluster added or removed sends it the whole cluster list again (about 15 MB at 10,000
    clusters); route tables go only when changed either way. How fast a one-cluster change
    reaches it under each: docs/BENCHMARKS.md, "xDS reconnect storm"."""


@dataclass(frozen=True, kw_only=True)
class AdsSettings:
    """What one downstream identity may ask of Atlas's gRPC port: enough for any Envoy, too
    little for one misbehaving cluster to slow the others (``xds_server.admission``)."""

    streams_per_node: Count = 3
    """An Envoy holds one ADS stream; a reconnect may briefly overlap the one it replaces."""
    streams_per_observability_node: Count = 16
    """Every replica of the observability Envoy connects as the same node."""
    requests_per_second: Rate = 20.0
    """Sustained requests per stream; an Envoy sends a handful per change."""
    request_burst: Count = 200
    """Requests a stream may send at once (a reconnecting Envoy subscribes to every type)."""
    throttled_for: Seconds = 10.0
    """Seconds a stream may stay over its rate (slowed down) before it is ended."""
    max_request_bytes: Annotated[int, Range(4096)] = 8 * 1024 * 1024
    """Largest request: a delta reconnect of the observability Envoy at 10,000 clusters lists
    every resource it holds, about 2 MB."""
    max_streams_per_connection: Count = 8
    """HTTP/2 streams one connection may hold open."""
    queued_requests: Count = 256
    """Requests read but not yet handled (a client that floods without reading responses)."""

    def streams_for(self, node: str, observability_node: str) -> int:
        """The streams ``node`` may hold: every replica of the observability Envoy is one."""
        if node == observability_node:
            return self.streams_per_observability_node
        return self.streams_per_node


@dataclass(frozen=True, kw_only=True)
class PKISettings:
    """Key types and certificate lifetimes."""

    key_type: Literal["ecdsa", "rsa"] = "ecdsa"
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

    ttl: TTL = 30
    """Seconds; short so a removed cluster leaves resolvers' caches quickly."""
    negative_ttl: TTL = 5
    """SOA minimum: how long resolvers cache NXDOMAIN/NODATA."""


@dataclass(frozen=True, kw_only=True)
class LeaseSettings:
    """Leader election (``coordination.k8s.io/v1`` Lease) among Atlas replicas."""

    name: str = ""
    """The Lease's name; empty: the instance's (``instance``)."""
    lease_duration: Seconds = 15.0
    """Seconds others wait after the holder's last renewal before taking over."""
    renew_deadline: Seconds = 10.0
    """A holder that could not renew for this long stops writing (shorter than the duration)."""
    retry_period: Seconds = 2.0
    """How often the holder renews and the others try."""


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    """Kubernetes list/watch behaviour."""

    watch_timeout: Annotated[int, Range(1)] = 240
    """Seconds a watch stays open server-side; shorter than proxies' idle cut-offs."""
    backoff_initial: Seconds = 0.2
    """First retry quickly: most failures are a restarting API server."""
    backoff_max: Seconds = 10.0
    """Never wait longer than this between attempts."""
    jitter: Annotated[float, Range(0, 1)] = 0.5
    """Up to this fraction is added at random, so replicas do not retry in lockstep."""
    reconcile_interval: Seconds = 5.0
    """Seconds between the leader's passes over Events, values Secrets and CA rotation."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything ``atlas serve`` needs, with defaults an operator can run with."""

    namespace: str = DEFAULT_NAMESPACE
    instance: str = DEFAULT_INSTANCE
    """Names every object this Atlas keeps in its namespace (``atlas.instance``), so that two
    installations can share one; the chart sets its full name."""
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
    poll_interval: Annotated[float, Range(0.01)] = 0.25
    """Seconds between scans of a manifests directory: well inside the 1 s delivery promise."""
    manifest_settle: Annotated[float, Range(0, 5)] = 0.05
    """Seconds a changed manifest file must stay unchanged (and a vanished one gone) before
    it is believed: a file caught between an editor's truncate and its write would look as
    if its clusters were removed, and a removed cluster loses its credentials. An empty file
    must stay empty 20 times as long (``watchers.files.EMPTY_SETTLE``)."""

    @property
    def names(self) -> InstanceNames:
        return InstanceNames(self.instance)

    def __hash__(self) -> int:
        # Builders are memoized on their arguments, settings among them: computing this hash
        # over every nested field once, not on each of thousands of lookups per build.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached


def settings_from_mapping(data: Any, *, source: str = "config") -> Settings:
    """Settings from a YAML/JSON mapping with the field names above (durations in seconds).

    Every field is checked against its declared range or choices, then the fields against
    each other (``check_settings``). Every message has one shape, ``<source>: <key.path>:
    <value>: <what is allowed>``, so a typo is never ignored and never a traceback.
    """
    settings = _build(Settings, data, source, "")
    check_settings(settings, source=source)
    return settings


def check_settings(settings: Settings, *, source: str = "settings") -> None:
    """What no single field can say: each proxy binds every port once, the lease's timings
    nest, names are names. ``atlas serve`` runs it again after the flags are applied."""
    problems = _cross_field_problems(settings)
    if problems:
        raise ConfigError("; ".join(f"{source}: {p}" for p in problems))


def _cross_field_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    envoy = s.envoy
    shared = {"envoy.admin_port": envoy.admin_port} if envoy.admin_port else {}
    if envoy.metrics_port:
        if envoy.metrics_port == envoy.admin_port:
            problems.append(
                f"envoy.metrics_port: {envoy.metrics_port}: already the port of "
                "envoy.admin_port; every listener of an Envoy needs a port of its own"
            )
        else:
            shared["envoy.metrics_port"] = envoy.metrics_port
    for prefix, ports in (
        ("observability_ports", s.observability_ports),
        ("downstream_ports", s.downstream_ports),
    ):
        proxy = "observability" if prefix.startswith("obs") else "downstream"
        taken = {port: key for key, port in shared.items()}
        for f in fields(ports):
            key, port = f"{prefix}.{f.name}", getattr(ports, f.name)
            if port in taken:
                problems.append(
                    f"{key}: {port}: already the port of {taken[port]}; every listener of the "
                    f"{proxy} Envoy needs a port of its own"
                )
            else:
                taken[port] = key
    lease = s.lease
    if lease.renew_deadline >= lease.lease_duration:
        problems.append(
            f"lease.renew_deadline: {_num(lease.renew_deadline)}: must be less than "
            f"lease.lease_duration ({_num(lease.lease_duration)}), or two replicas may both lead"
        )
    if lease.retry_period >= lease.renew_deadline:
        problems.append(
            f"lease.retry_period: {_num(lease.retry_period)}: must be less than "
            f"lease.renew_deadline ({_num(lease.renew_deadline)}), or a renewal can never retry"
        )
    if s.watch.backoff_initial > s.watch.backoff_max:
        problems.append(
            f"watch.backoff_initial: {_num(s.watch.backoff_initial)}: must not exceed "
            f"watch.backoff_max ({_num(s.watch.backoff_max)})"
        )
    if s.pki.leaf_lifetime >= s.pki.ca_lifetime:
        problems.append(
            f"pki.leaf_lifetime: {_seconds(s.pki.leaf_lifetime)}: must be shorter than "
            f"pki.ca_lifetime ({_seconds(s.pki.ca_lifetime)})"
        )
    if s.pki.bootstrap_lifetime > s.pki.ca_lifetime:
        problems.append(
            f"pki.bootstrap_lifetime: {_seconds(s.pki.bootstrap_lifetime)}: must not exceed "
            f"pki.ca_lifetime ({_seconds(s.pki.ca_lifetime)})"
        )
    for key, value in (
        ("namespace", s.namespace),
        ("instance", s.instance),
        ("observability_node", s.observability_node),
    ):
        if not is_dns_label(value):
            problems.append(f"{key}: {value!r}: must be a DNS-1123 label (a-z, 0-9, '-')")
    net = s.network
    if s.lease.name and not is_dns_label(s.lease.name):
        problems.append(f"lease.name: {s.lease.name!r}: must be a DNS-1123 label (a-z, 0-9, '-')")
    if not is_ip(net.observability_listen_address):
        problems.append(
            f"network.observability_listen_address: {net.observability_listen_address!r}: "
            "must be an IP address (0.0.0.0 for all)"
        )
    if net.downstream_listen_address != BIND_ENVOY_ADDRESS and not is_ip(
        net.downstream_listen_address
    ):
        problems.append(
            f"network.downstream_listen_address: {net.downstream_listen_address!r}: must be an "
            f"IP address or {BIND_ENVOY_ADDRESS!r}"
        )
    for key, value in (
        ("network.observability_address", net.observability_address),
        ("network.control_plane_address", net.control_plane_address),
        ("envoy.admin_address", envoy.admin_address),
    ):
        if not is_ip(value) and not is_hostname(value):
            problems.append(f"{key}: {value!r}: must be an IP address or a DNS name")
    for key, selector in (
        ("alertmanager_selector", s.alertmanager_selector),
        ("envoy_selector", s.envoy_selector),
    ):
        bad = [t for t in selector.split(",") if t.strip() and "=" not in t]
        if bad:
            problems.append(f"{key}: {selector!r}: must be key=value terms joined by commas")
    return problems


def _seconds(value: timedelta) -> str:
    return f"{int(value.total_seconds())} s"


def _build(cls: type[_T], data: Any, source: str, path: str) -> _T:
    where = f"{source}: {path}" if path else source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {_shown(data)}: must be a mapping of settings")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls, include_extras=True)
    values: dict[str, Any] = {}
    for key, raw in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in known:
            raise ConfigError(f"{source}: {key_path}: unknown setting{_did_you_mean(key, known)}")
        values[key] = _value(hints[key], raw, source, key_path)
    return cls(**values)


def _did_you_mean(key: Any, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}known: {', '.join(sorted(known))})"


def _shown(raw: Any) -> str:
    """The value as the YAML file has it (``true``, ``null``), quoted when a string."""
    if isinstance(raw, bool) or raw is None:
        text = {True: "true", False: "false", None: "null"}[raw]
    else:
        text = repr(raw) if isinstance(raw, str) else str(raw)
    return text if len(text) <= 60 else text[:60] + "…"


def _value(hint: Any, raw: Any, source: str, path: str) -> Any:
    limits: Range | None = None
    if get_origin(hint) is Annotated:
        hint, *extras = get_args(hint)
        limits = next((e for e in extras if isinstance(e, Range)), None)
    if is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, raw, source, path)

    def fail(allowed: str) -> ConfigError:
        return ConfigError(f"{source}: {path}: {_shown(raw)}: {allowed}")

    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if raw not in choices:
            raise fail(f"must be one of {', '.join(map(str, choices))}")
        return raw
    if hint is timedelta:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
            raise fail("must be a number of seconds > 0")
        return timedelta(seconds=raw)
    if hint is float:
        unit = "a number"
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise fail(f"must be {limits.describe(unit) if limits else unit}")
        value: float = float(raw)
    elif hint is int:
        unit = "a whole number"
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise fail(f"must be {limits.describe(unit) if limits else unit}")
        value = raw
    elif hint is str:
        if not isinstance(raw, str):
            raise fail("must be a string")
        return raw
    else:
        raise fail("unsupported setting type")
    if limits is not None and not limits.allows(value):
        raise fail(f"must be {limits.describe(unit)}")
    return value


def settings_schema(cls: type[Any] = Settings) -> dict[str, Any]:
    """The JSON Schema of the settings file, field for field what ``settings_from_mapping``
    accepts (unknown keys refused, ranges, choices): charts/atlas's values schema carries it
    under ``settings``, so that ``helm install`` refuses a typo before a pod starts."""
    hints = get_type_hints(cls, include_extras=True)
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: _field_schema(hints[f.name]) for f in fields(cls)},
    }


def _field_schema(hint: Any) -> dict[str, Any]:
    limits: Range | None = None
    if get_origin(hint) is Annotated:
        hint, *extras = get_args(hint)
        limits = next((e for e in extras if isinstance(e, Range)), None)
    if is_dataclass(hint) and isinstance(hint, type):
        return settings_schema(hint)
    if get_origin(hint) is Literal:
        return {"enum": list(get_args(hint))}
    if hint is timedelta:
        return {"type": "number", "exclusiveMinimum": 0}
    if hint is str:
        return {"type": "string"}
    schema: dict[str, Any] = {"type": "integer" if hint is int else "number"}
    if limits is None:
        return schema
    if limits.low is not None:
        schema["exclusiveMinimum" if limits.exclusive_low else "minimum"] = limits.low
    if limits.high is not None:
        schema["maximum"] = limits.high
    return {"anyOf": [{"const": 0}, schema]} if limits.zero_means else schema

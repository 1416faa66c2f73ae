"""Small constructors shared by the node builders: addresses, TLS, clusters, listeners.

Everything is built with the generated protobuf classes (never ``json_format``): about ten
times cheaper, which matters at thousands of clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.connection_limit.v3 import connection_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from atlas.config import Settings
from atlas.names import is_ip
from xds_server import wire
from xds_server.builders.access_log import access_logs
from xds_server.builders.authorization import deny_all_filter
from xds_server.builders.refusals import counter_filter
from xds_server.resources import (
    NO_REFS,
    Resource,
    make_resource,
    refs,
    resource_from_bytes,
)
from xds_server.types import CLUSTER, LISTENER, ROUTE, SECRET

__all__ = [
    "BUNDLE_SECRET",
    "IDENTITY_SECRET",
    "NO_FLOW",
    "NO_LIMITS",
    "TLS_REFS",
    "Flow",
    "ListenerLimits",
    "PeerMatch",
    "cluster",
    "cluster_body",
    "http_listener",
    "tcp_proxy_listener",
    "thanos_flow",
]

IDENTITY_SECRET = "identity"
"""This node's own certificate and key (each node only ever receives its own)."""
BUNDLE_SECRET = "trust-bundle"
"""The CA bundle: current CA plus those kept during a rotation."""

_HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

# Builders are pure, so their outputs can be shared. These caches hold the few distinct TLS
# contexts and listeners; what grows with the topology is memoized by the node builders.
_CACHE = 1024


@lru_cache(maxsize=64)
def seconds(value: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(value * 1e9))
    return d


def address(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
    )


@lru_cache(maxsize=1)
def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


@dataclass(frozen=True)
class PeerMatch:
    """The peer's URI SAN: an exact identity, or a prefix (any downstream cluster)."""

    value: str
    prefix: bool = False

    def matcher(self) -> common_pb2.SubjectAltNameMatcher:
        string = (
            string_pb2.StringMatcher(prefix=self.value)
            if self.prefix
            else string_pb2.StringMatcher(exact=self.value)
        )
        return common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=string
        )


@lru_cache(maxsize=_CACHE)
def _common_tls(peer: PeerMatch, alpn: tuple[str, ...]) -> tls_pb2.CommonTlsContext:
    """Certificate and CA bundle both over SDS; the peer's URI SAN checked, not only the CA."""
    sds = ads_source()
    return tls_pb2.CommonTlsContext(
        alpn_protocols=list(alpn),
        tls_certificate_sds_secret_configs=[
            secret_pb2.SdsSecretConfig(name=IDENTITY_SECRET, sds_config=sds)
        ],
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=common_pb2.CertificateValidationContext(
                match_typed_subject_alt_names=[peer.matcher()]
            ),
            validation_context_sds_secret_config=secret_pb2.SdsSecretConfig(
                name=BUNDLE_SECRET, sds_config=sds
            ),
        ),
    )


TLS_REFS = refs((SECRET, (IDENTITY_SECRET, BUNDLE_SECRET)))
"""What a cluster or listener with a peer uses: both secrets, over SDS."""


def _transport_socket(message: Message) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(
        name="envoy.transport_sockets.tls", typed_config=wire.packed(message)
    )


@lru_cache(maxsize=_CACHE)
def _upstream_tls(peer: PeerMatch, http2: bool) -> base_pb2.TransportSocket:
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=_common_tls(peer, ("h2",) if http2 else ())
    )
    return _transport_socket(context)


@dataclass(frozen=True)
class Flow:
    """How much one connection and one HTTP/2 stream may hold in flight on the Thanos path;
    0 leaves Envoy's default. Set from ``EnvoySettings``; ``bench/tunnel.py`` measured them."""

    buffer_bytes: int = 0
    """``per_connection_buffer_limit_bytes`` of a listener or cluster (Envoy: 1 MiB): Envoy
    stops reading one side while the other side's buffer is above it."""
    stream_window: int = 0
    """HTTP/2 ``initial_stream_window_size`` (Envoy: 256 MiB)."""
    connection_window: int = 0
    """HTTP/2 ``initial_connection_window_size`` (Envoy: 256 MiB)."""

    def apply_http2(self, http2: protocol_pb2.Http2ProtocolOptions) -> None:
        if self.stream_window:
            http2.initial_stream_window_size.value = self.stream_window
        if self.connection_window:
            http2.initial_connection_window_size.value = self.connection_window


NO_FLOW = Flow()


def thanos_flow(settings: Settings) -> Flow:
    envoy = settings.envoy
    return Flow(envoy.stream_buffer_bytes, envoy.http2_stream_window, envoy.http2_connection_window)


@lru_cache(maxsize=8)
def _http2_options(keepalive: bool, flow: Flow = NO_FLOW) -> any_pb2.Any:
    """HTTP/2 upstream options; ``keepalive`` pings every 15 s (5 s timeout).

    Pings detect a dead cross-cluster link long before TCP would, so every Envoy-to-Envoy hop
    sends them. A local gRPC server is never pinged: grpc-go (Thanos's sidecar) and gRPC C-core
    allow one ping per 5 minutes, none without an active stream, and answer more with GOAWAY
    ``too_many_pings``, which tore down idle connections and slow Series streams.
    """
    http2 = protocol_pb2.Http2ProtocolOptions()
    flow.apply_http2(http2)
    if keepalive:
        http2.connection_keepalive.CopyFrom(
            protocol_pb2.KeepaliveSettings(interval=seconds(15), timeout=seconds(5))
        )
    options = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http2_protocol_options=http2
        )
    )
    return wire.packed(options)


_CLUSTER_NAME = wire.number(cluster_pb2.Cluster, "name")
_LOAD_ASSIGNMENT = wire.number(cluster_pb2.Cluster, "load_assignment")
_CLA_NAME = wire.number(endpoint_pb2.ClusterLoadAssignment, "cluster_name")
_CLA_ENDPOINTS = wire.number(endpoint_pb2.ClusterLoadAssignment, "endpoints")
_LB_ENDPOINTS = wire.number(endpoint_components_pb2.LocalityLbEndpoints, "lb_endpoints")
_ENDPOINT = wire.number(endpoint_components_pb2.LbEndpoint, "endpoint")
_ENDPOINT_ADDRESS = wire.number(endpoint_components_pb2.Endpoint, "address")
_SOCKET_ADDRESS = wire.number(address_pb2.Address, "socket_address")
_SA_ADDRESS = wire.number(address_pb2.SocketAddress, "address")
_SA_PORT = wire.number(address_pb2.SocketAddress, "port_value")


@lru_cache(maxsize=256)
def _cluster_constant(
    is_static: bool, http2: bool, peer: PeerMatch | None, connect_timeout: float, flow: Flow
) -> bytes:
    """Every field of a Cluster except its name and endpoint."""
    c = cluster_pb2.Cluster(
        type=cluster_pb2.Cluster.STATIC if is_static else cluster_pb2.Cluster.STRICT_DNS,
        connect_timeout=seconds(connect_timeout),
    )
    if flow.buffer_bytes:
        c.per_connection_buffer_limit_bytes.value = flow.buffer_bytes
    if http2:
        # A peer (mutual TLS) means the far end is another cluster's Envoy: see _http2_options.
        options = _http2_options(peer is not None, flow)
        c.typed_extension_protocol_options[_HTTP_OPTIONS_KEY].CopyFrom(options)
    if peer is not None:
        c.transport_socket.CopyFrom(_upstream_tls(peer, http2))
    return bytes(c.SerializeToString(deterministic=True))


def endpoints(host: str, port: int) -> bytes:
    """The ``endpoints`` field of a ClusterLoadAssignment holding one address."""
    socket_address = wire.text(_SA_ADDRESS, host) + wire.oneof_uint(_SA_PORT, port)
    endpoint = wire.delimited(_ENDPOINT_ADDRESS, wire.delimited(_SOCKET_ADDRESS, socket_address))
    lb_endpoint = wire.delimited(_ENDPOINT, endpoint)
    return wire.delimited(_CLA_ENDPOINTS, wire.delimited(_LB_ENDPOINTS, lb_endpoint))


def cluster_body(
    name: str,
    host: str,
    port: int,
    *,
    http2: bool,
    peer: PeerMatch | None = None,
    connect_timeout: float = 2.0,
    static: bool | None = None,
    flow: Flow = NO_FLOW,
) -> bytes:
    """The encoded Cluster; ``static`` overrides telling an IP from a name by ``host``."""
    encoded = name.encode()
    load_assignment = wire.delimited(_CLA_NAME, encoded) + endpoints(host, port)
    is_static = is_ip(host) if static is None else static
    return (
        wire.delimited(_CLUSTER_NAME, encoded)
        + _cluster_constant(is_static, http2, peer, connect_timeout, flow)
        + wire.delimited(_LOAD_ASSIGNMENT, load_assignment)
    )


def cluster(
    name: str,
    host: str,
    port: int,
    *,
    http2: bool,
    peer: PeerMatch | None = None,
    connect_timeout: float = 2.0,
    flow: Flow = NO_FLOW,
) -> Resource:
    """An upstream with its endpoint inline: STATIC for an IP, STRICT_DNS for a name.

    ``peer`` makes it mutual TLS (our identity, the peer's SAN checked) and, with ``http2``,
    keeps the connection alive with pings (an Envoy-to-Envoy hop). HTTP/2 goes through
    ``typed_extension_protocol_options``, not the deprecated ``http2_protocol_options``.
    Assembled on the wire: thousands of clusters differ only in name and endpoint.
    """
    body = cluster_body(
        name, host, port, http2=http2, peer=peer, connect_timeout=connect_timeout, flow=flow
    )
    return resource_from_bytes(CLUSTER, name, body, TLS_REFS if peer is not None else NO_REFS)


def _listener(
    name: str,
    host: str,
    port: int,
    chain: listener_components_pb2.FilterChain,
    flow: Flow = NO_FLOW,
) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(name=name, address=address(host, port), filter_chains=[chain])
    if flow.buffer_bytes:
        listener.per_connection_buffer_limit_bytes.value = flow.buffer_bytes
    return listener


@dataclass(frozen=True)
class ListenerLimits:
    """What one listener allows its clients; 0 leaves Envoy's default."""

    max_connections: int = 0
    """Open connections; beyond, new ones are closed at once (``connection_limit`` filter)."""
    max_request_headers_kb: int = 0
    request_headers_timeout: float = 0.0
    """Seconds to receive a request's headers."""
    request_timeout: float = 0.0
    """Seconds for a whole request (not for streams, which may be long: Thanos Series)."""
    idle_timeout: float = 0.0
    """Seconds a connection may stay idle."""


NO_LIMITS = ListenerLimits()


def _connection_limit(name: str, limit: int) -> listener_components_pb2.Filter:
    config = connection_limit_pb2.ConnectionLimit(stat_prefix=name)
    config.max_connections.value = limit
    return listener_components_pb2.Filter(
        name="envoy.filters.network.connection_limit", typed_config=wire.packed(config)
    )


def _limit_manager(manager: hcm_pb2.HttpConnectionManager, limits: ListenerLimits) -> None:
    if limits.max_request_headers_kb:
        manager.max_request_headers_kb.value = limits.max_request_headers_kb
    if limits.request_headers_timeout:
        manager.request_headers_timeout.CopyFrom(seconds(limits.request_headers_timeout))
    if limits.request_timeout:
        manager.request_timeout.CopyFrom(seconds(limits.request_timeout))
    if limits.idle_timeout:
        manager.common_http_protocol_options.idle_timeout.CopyFrom(seconds(limits.idle_timeout))


@lru_cache(maxsize=_CACHE)
def http_listener(
    name: str,
    host: str,
    port: int,
    *,
    route: str,
    access_log: str,
    peer: PeerMatch | None = None,
    http2_only: bool = False,
    by_host: bool = False,
    counted: bool = False,
    authorized: bool = False,
    limits: ListenerLimits = NO_LIMITS,
    flow: Flow = NO_FLOW,
) -> Resource:
    """HTTP listener with routes over RDS; with ``peer`` it requires a client certificate.

    ``by_host``: its routes choose by ``:authority``/``Host``. Thanos dials the SRV target as
    resolved, fully qualified (``east-0.sidecars.thanos.atlas.:10901``), and an alert's Host
    may carry a port, so the port and the trailing dot are stripped before matching. Listeners
    that route by path keep the Host whole: Envoy's redirects are built from it, and a
    redirect without the port would send the browser to port 80.
    ``counted`` adds the filter that the route table's refusals use as per-reason counters
    (``builders.refusals``). ``authorized`` adds RBAC denying every request unless the route
    table allows its peer (``builders.authorization``). ``access_log`` is a mode of
    ``EnvoySettings.access_log``.
    """
    filters = [counter_filter()] if counted else []
    if authorized:
        filters.append(deny_all_filter())
    filters.append(
        hcm_pb2.HttpFilter(
            name="envoy.filters.http.router", typed_config=wire.packed(router_pb2.Router())
        )
    )
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        codec_type=hcm_pb2.HttpConnectionManager.HTTP2
        if http2_only
        else hcm_pb2.HttpConnectionManager.AUTO,
        strip_any_host_port=by_host,
        strip_trailing_host_dot=by_host,
        rds=hcm_pb2.Rds(config_source=ads_source(), route_config_name=route),
        http_filters=filters,
        access_log=access_logs(name, access_log),
    )
    _limit_manager(manager, limits)
    if flow.stream_window or flow.connection_window:
        flow.apply_http2(manager.http2_protocol_options)
    chain = listener_components_pb2.FilterChain(
        filters=[
            *([_connection_limit(name, limits.max_connections)] if limits.max_connections else []),
            listener_components_pb2.Filter(
                name="envoy.filters.network.http_connection_manager",
                typed_config=wire.packed(manager),
            ),
        ]
    )
    needs = refs((ROUTE, (route,)))
    if peer is not None:
        tls = tls_pb2.DownstreamTlsContext(
            common_tls_context=_common_tls(peer, ("h2", "http/1.1")),
        )
        tls.require_client_certificate.value = True
        chain.transport_socket.CopyFrom(_transport_socket(tls))
        needs = refs((ROUTE, (route,)), *TLS_REFS.items())
    return make_resource(LISTENER, name, _listener(name, host, port, chain, flow), needs)


@lru_cache(maxsize=_CACHE)
def tcp_proxy_listener(
    name: str, host: str, port: int, *, target: str, max_connections: int = 0
) -> Resource:
    """Plain TCP forwarding: TLS passes through so the far end sees the client's own cert."""
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=name, cluster=target)
    chain = listener_components_pb2.FilterChain(
        filters=[
            *([_connection_limit(name, max_connections)] if max_connections else []),
            listener_components_pb2.Filter(
                name="envoy.filters.network.tcp_proxy", typed_config=wire.packed(proxy)
            ),
        ]
    )
    needs = refs((CLUSTER, (target,)))
    return make_resource(LISTENER, name, _listener(name, host, port, chain), needs)

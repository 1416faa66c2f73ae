"""Builders: the resources of each node exactly as the ports table says."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.connection_limit.v3 import connection_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from atlas.config import EnvoySettings, NetworkSettings, Settings
from tests.xds_server.fixtures import TOPOLOGY, creds, snapshots
from xds_server.snapshot import Snapshot
from xds_server.types import CLUSTER, LISTENER, ROUTE, SECRET


def decode(snapshot: Snapshot, type_url: str, name: str, cls: Any) -> Any:
    message = cls()
    message.ParseFromString(snapshot.of(type_url)[name].body)
    return message


def listener_port(listener: listener_pb2.Listener) -> tuple[str, int]:
    sa = listener.address.socket_address
    return sa.address, sa.port_value


def hcm(listener: listener_pb2.Listener) -> hcm_pb2.HttpConnectionManager:
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[-1].typed_config.Unpack(manager)  # after any limit
    return manager


def tls_of(cluster: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    ctx = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket.typed_config.Unpack(ctx)
    return ctx


def test_one_snapshot_per_node() -> None:
    assert sorted(snapshots()) == ["atlas", "east", "west"]


def test_observability_listeners_match_the_ports_table() -> None:
    obs = snapshots()["atlas"]
    ports = {
        n: listener_port(decode(obs, LISTENER, n, listener_pb2.Listener)) for n in obs.of(LISTENER)
    }
    assert ports == {
        "ads": ("0.0.0.0", 10900),
        "thanos": ("0.0.0.0", 10901),
        "alertmanager-ui": ("0.0.0.0", 10902),
        "alert-intake": ("0.0.0.0", 10903),
        "prometheus-ui": ("0.0.0.0", 10904),
    }
    ads = decode(obs, LISTENER, "ads", listener_pb2.Listener)
    limit, tcp = ads.filter_chains[0].filters
    proxy = tcp_proxy_pb2.TcpProxy()
    tcp.typed_config.Unpack(proxy)
    assert proxy.cluster == "atlas_control_plane"
    connections = connection_limit_pb2.ConnectionLimit()
    limit.typed_config.Unpack(connections)
    assert connections.max_connections.value == 20_000, "a limit set on purpose"
    assert not ads.filter_chains[0].HasField("transport_socket"), "TLS passes through to Atlas"
    intake = decode(obs, LISTENER, "alert-intake", listener_pb2.Listener)
    downstream_tls = tls_pb2.DownstreamTlsContext()
    intake.filter_chains[0].transport_socket.typed_config.Unpack(downstream_tls)
    assert downstream_tls.require_client_certificate.value
    san = downstream_tls.common_tls_context.combined_validation_context.default_validation_context
    assert san.match_typed_subject_alt_names[0].matcher.prefix == "spiffe://atlas/cluster/"


def test_downstream_listeners_and_peer_identity() -> None:
    east = snapshots()["east"]
    ports = {
        n: listener_port(decode(east, LISTENER, n, listener_pb2.Listener))[1]
        for n in east.of(LISTENER)
    }
    assert ports == {
        "thanos": 11901,
        "alertmanager": 11902,
        "alert-relay": 11903,
        "prometheus": 11904,
    }
    for name in ("thanos", "alertmanager", "prometheus"):
        listener = decode(east, LISTENER, name, listener_pb2.Listener)
        ctx = tls_pb2.DownstreamTlsContext()
        listener.filter_chains[0].transport_socket.typed_config.Unpack(ctx)
        assert ctx.require_client_certificate.value
        common = ctx.common_tls_context
        assert common.tls_certificate_sds_secret_configs[0].name == "identity"
        assert (
            common.combined_validation_context.validation_context_sds_secret_config.name
            == "trust-bundle"
        )
        validation = common.combined_validation_context.default_validation_context
        matcher = validation.match_typed_subject_alt_names[0]
        assert matcher.matcher.exact == "spiffe://atlas/observability"
    relay = decode(east, LISTENER, "alert-relay", listener_pb2.Listener)
    assert not relay.filter_chains[0].HasField("transport_socket"), "in-cluster Prometheus is plain"
    assert (
        hcm(decode(east, LISTENER, "thanos", listener_pb2.Listener)).codec_type
        == hcm_pb2.HttpConnectionManager.HTTP2
    )


def test_thanos_routes_by_srv_target_name() -> None:
    snaps = snapshots()
    obs_routes = decode(snaps["atlas"], ROUTE, "thanos", route_pb2.RouteConfiguration)
    *targets, refused = obs_routes.virtual_hosts
    assert {tuple(v.domains): v.routes[0].route.cluster for v in targets} == {
        ("east-0.sidecars.thanos.atlas",): "east_thanos",
        ("east-1.sidecars.thanos.atlas",): "east_thanos",
        ("west-0.sidecars.thanos.atlas",): "west_thanos",
    }
    assert all(v.routes[0].route.timeout.seconds == 0 for v in targets), "Series streams"
    assert list(refused.domains) == ["*"], "every other name gets an explanation"
    unknown, not_a_target = refused.routes
    assert unknown.match.headers[0].string_match.suffix == ".sidecars.thanos.atlas"
    assert unknown.direct_response.status == not_a_target.direct_response.status == 503
    assert unknown.direct_response.body_format.text_format_source.inline_string == (
        "atlas: no cluster/replica '%REQ(:AUTHORITY)%' (known: east-0, east-1, west-0)"
    )
    assert "dnssrvnoa+" in not_a_target.direct_response.body_format.text_format_source.inline_string
    east_routes = decode(snaps["east"], ROUTE, "thanos", route_pb2.RouteConfiguration)
    assert {v.domains[0]: v.routes[0].route.cluster for v in east_routes.virtual_hosts} == {
        "east-0.sidecars.thanos.atlas": "thanos_0",
        "east-1.sidecars.thanos.atlas": "thanos_1",
    }
    per_replica = {
        n: decode(snaps["east"], CLUSTER, n, cluster_pb2.Cluster) for n in ("thanos_0", "thanos_1")
    }
    hosts = {
        n: c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address
        for n, c in per_replica.items()
    }
    assert hosts == {"thanos_0": "prom-0.mon.svc", "thanos_1": "prom-1.mon.svc"}
    assert per_replica["thanos_0"].type == cluster_pb2.Cluster.STRICT_DNS
    west = decode(snaps["west"], CLUSTER, "thanos_0", cluster_pb2.Cluster)
    sa = west.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (sa.address, sa.port_value) == (
        "prometheus-operated.monitoring.svc.cluster.local",
        10901,
    )


def test_listeners_routing_by_host_ignore_port_and_trailing_dot() -> None:
    """Thanos dials "east-0.sidecars.thanos.atlas.:10901" (the SRV target as resolved); the UI
    listeners keep the Host whole, since Envoy builds its redirects from it."""
    snaps = snapshots()
    by_host = {("atlas", "thanos"), ("atlas", "alert-intake"), ("east", "thanos")}
    for node, name in (*by_host, ("atlas", "prometheus-ui"), ("atlas", "alertmanager-ui")):
        manager = hcm(decode(snaps[node], LISTENER, name, listener_pb2.Listener))
        stripped = (manager.strip_any_host_port, manager.strip_trailing_host_dot)
        assert stripped == ((True, True) if (node, name) in by_host else (False, False)), name


def test_every_http_listener_logs_errors_as_json_on_stdout() -> None:
    from envoy.extensions.access_loggers.stream.v3 import stream_pb2

    for node, snapshot in snapshots().items():
        for name in snapshot.of(LISTENER):
            if name == "ads":
                continue
            (log,) = hcm(decode(snapshot, LISTENER, name, listener_pb2.Listener)).access_log
            stdout = stream_pb2.StdoutAccessLog()
            log.typed_config.Unpack(stdout)
            fields = stdout.log_format.json_format.fields
            assert fields["listener"].string_value == name
            assert fields["node"].string_value == "%CEL(xds.node.id)%", "shared across nodes"
            assert fields["flags"].string_value == "%RESPONSE_FLAGS%"
            assert log.filter.HasField("or_filter"), f"{node}/{name}: errors only by default"
    quiet = snapshots(settings=Settings(envoy=EnvoySettings(access_log="off")))
    assert not hcm(decode(quiet["atlas"], LISTENER, "thanos", listener_pb2.Listener)).access_log
    every = snapshots(settings=Settings(envoy=EnvoySettings(access_log="all")))
    (log,) = hcm(decode(every["east"], LISTENER, "thanos", listener_pb2.Listener)).access_log
    assert not log.HasField("filter")


def http2_options(cluster: cluster_pb2.Cluster) -> Any:
    options = http_protocol_options_pb2.HttpProtocolOptions()
    cluster.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ].Unpack(options)
    return options.explicit_http_config.http2_protocol_options


def test_keepalive_pings_cross_cluster_hops_only() -> None:
    """grpc-go (Thanos's sidecar) answers pings more often than every 5 minutes with GOAWAY."""
    snaps = snapshots()
    for name in ("east_thanos", "east_prometheus", "east_alertmanager"):
        keepalive = http2_options(decode(snaps["atlas"], CLUSTER, name, cluster_pb2.Cluster))
        assert keepalive.connection_keepalive.interval.seconds == 15, name
    relay = decode(snaps["east"], CLUSTER, "observability_alerts", cluster_pb2.Cluster)
    assert http2_options(relay).HasField("connection_keepalive")
    for name in ("thanos_0", "thanos_1"):
        sidecar = decode(snaps["east"], CLUSTER, name, cluster_pb2.Cluster)
        assert sidecar.typed_extension_protocol_options, "still HTTP/2"
        assert not http2_options(sidecar).HasField("connection_keepalive"), name
    for name in ("prometheus", "alertmanager"):
        web = decode(snaps["east"], CLUSTER, name, cluster_pb2.Cluster)
        assert not web.typed_extension_protocol_options, "HTTP/1.1: no pings at all"


def test_ui_prefix_routes_rewrite_to_root() -> None:
    obs = snapshots()["atlas"]
    prom = decode(obs, ROUTE, "prometheus-ui", route_pb2.RouteConfiguration)
    routes = {r.match.prefix or r.match.path: r for r in prom.virtual_hosts[0].routes}
    assert routes["/prom/east/"].route.cluster == "east_prometheus"
    assert routes["/prom/east/"].route.prefix_rewrite == "/"
    assert routes["/prom/east"].redirect.path_redirect == "/prom/east/"
    am = decode(obs, ROUTE, "alertmanager-ui", route_pb2.RouteConfiguration)
    assert {
        r.match.prefix: r.route.cluster for r in am.virtual_hosts[0].routes if r.match.prefix
    } == {"/am/east/": "east_alertmanager", "/am/west/": "west_alertmanager"}
    intake = decode(obs, ROUTE, "alert-intake", route_pb2.RouteConfiguration)
    *replicas, fallback = intake.virtual_hosts
    assert [(list(v.domains), v.routes[0].route.cluster) for v in replicas] == [
        (
            ["alertmanager-0", "alertmanager-0.*", "alertmanager0", "alertmanager0.*"],
            "alertmanager_0",
        )
    ]
    assert list(fallback.domains) == ["*"] and fallback.routes[0].direct_response.status == 404


def test_cross_cluster_upstreams_are_http2_mtls_with_peer_san() -> None:
    obs = snapshots()["atlas"]
    east = decode(obs, CLUSTER, "east_thanos", cluster_pb2.Cluster)
    assert east.type == cluster_pb2.Cluster.STATIC
    sa = east.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (sa.address, sa.port_value) == ("192.0.2.11", 11901)
    assert not east.HasField("http2_protocol_options"), "deprecated field unused"
    options = http_protocol_options_pb2.HttpProtocolOptions()
    east.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ].Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    tls = tls_of(east)
    assert list(tls.common_tls_context.alpn_protocols) == ["h2"]
    validation = tls.common_tls_context.combined_validation_context.default_validation_context
    matcher = validation.match_typed_subject_alt_names[0]
    assert matcher.matcher.exact == "spiffe://atlas/cluster/east"
    west = decode(obs, CLUSTER, "west_prometheus", cluster_pb2.Cluster)
    assert west.type == cluster_pb2.Cluster.STRICT_DNS
    relay = decode(snapshots()["east"], CLUSTER, "observability_alerts", cluster_pb2.Cluster)
    assert (
        tls_of(relay)
        .common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[
            0
        ]
        .matcher.exact
        == "spiffe://atlas/observability"
    )


def test_secrets_are_the_nodes_own() -> None:
    snaps = snapshots()
    for node in ("atlas", "east", "west"):
        identity = decode(snaps[node], SECRET, "identity", secret_pb2.Secret)
        assert identity.tls_certificate.certificate_chain.inline_bytes == creds(node).cert_pem
        bundle = decode(snaps[node], SECRET, "trust-bundle", secret_pb2.Secret)
        assert bundle.validation_context.trusted_ca.inline_bytes == creds(node).bundle_pem
    assert snaps["east"].of(SECRET)["identity"].body != snaps["west"].of(SECRET)["identity"].body


def test_listen_addresses_come_from_settings() -> None:
    settings = Settings(
        network=NetworkSettings(
            observability_listen_address="127.0.0.10", downstream_listen_address="envoy-address"
        )
    )
    snaps = snapshots(settings=settings)
    assert (
        listener_port(decode(snaps["atlas"], LISTENER, "thanos", listener_pb2.Listener))[0]
        == "127.0.0.10"
    )
    assert (
        listener_port(decode(snaps["east"], LISTENER, "thanos", listener_pb2.Listener))[0]
        == "192.0.2.11"
    )


def test_versions_are_content_hashes_stable_across_builds() -> None:
    first, second = snapshots(), snapshots()
    assert {n: dict(s.versions) for n, s in first.items()} == {
        n: dict(s.versions) for n, s in second.items()
    }
    changed = snapshots(TOPOLOGY.__class__(TOPOLOGY.clusters[:1], TOPOLOGY.alertmanagers))
    assert changed["east"] == first["east"], "east's own resources did not change"
    assert changed["atlas"].versions[CLUSTER] != first["atlas"].versions[CLUSTER]


def test_versions_are_the_same_in_another_process() -> None:
    """A restarted Atlas must send nothing to Envoys that hold the config: every byte,
    maps inside packed Any fields included (access-log formats, per-route filter configs),
    must come out the same in a new process."""
    import json
    import subprocess
    import sys

    script = (
        "import json\n"
        "from tests.xds_server.fixtures import snapshots\n"
        "print(json.dumps({n: {t: v for t, v in s.versions.items() if 'Secret' not in t}\n"
        "                  for n, s in snapshots().items()}))\n"
    )
    # Secrets differ: each process issues its own test credentials.
    here = {n: {t: v for t, v in s.versions.items() if t != SECRET} for n, s in snapshots().items()}
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        assert json.loads(out.stdout) == here, f"PYTHONHASHSEED={seed}"


def test_the_front_door_limits_every_http_listener() -> None:
    obs = snapshots()["atlas"]
    expected = {  # (connections, request timeout): Thanos streams have no request timeout
        "thanos": (4096, 0),
        "alertmanager-ui": (4096, 300),
        "prometheus-ui": (4096, 300),
        "alert-intake": (20_000, 30),
    }
    for name, (max_connections, request_timeout) in expected.items():
        listener = decode(obs, LISTENER, name, listener_pb2.Listener)
        limit, hcm = listener.filter_chains[0].filters
        connections = connection_limit_pb2.ConnectionLimit()
        limit.typed_config.Unpack(connections)
        assert connections.max_connections.value == max_connections, name
        manager = hcm_pb2.HttpConnectionManager()
        hcm.typed_config.Unpack(manager)
        assert manager.max_request_headers_kb.value == 32, name
        assert manager.request_headers_timeout.seconds == 10, name
        assert manager.request_timeout.seconds == request_timeout, name
        assert manager.common_http_protocol_options.idle_timeout.seconds == 300, name


def test_the_thanos_path_carries_the_flow_settings_and_nothing_else_does() -> None:
    """Both Envoys' StoreAPI listeners and their StoreAPI upstreams; Envoy's defaults when 0."""
    envoy = EnvoySettings(
        stream_buffer_bytes=16 << 20, http2_stream_window=8 << 20, http2_connection_window=32 << 20
    )
    tuned = snapshots(TOPOLOGY, Settings(envoy=envoy))
    thanos_path = [
        (tuned["atlas"], LISTENER, "thanos"),
        (tuned["atlas"], CLUSTER, "east_thanos"),
        (tuned["east"], LISTENER, "thanos"),
        (tuned["east"], CLUSTER, "thanos_0"),
    ]
    for snap, type_url, name in thanos_path:
        cls = listener_pb2.Listener if type_url == LISTENER else cluster_pb2.Cluster
        message = decode(snap, type_url, name, cls)
        assert message.per_connection_buffer_limit_bytes.value == 16 << 20, name
        http2 = (
            hcm(message).http2_protocol_options if type_url == LISTENER else http2_options(message)
        )
        assert http2.initial_stream_window_size.value == 8 << 20, name
        assert http2.initial_connection_window_size.value == 32 << 20, name
    ui = decode(tuned["atlas"], CLUSTER, "east_prometheus", cluster_pb2.Cluster)
    assert not ui.HasField("per_connection_buffer_limit_bytes")
    default = decode(snapshots()["atlas"], LISTENER, "thanos", listener_pb2.Listener)
    assert not default.HasField("per_connection_buffer_limit_bytes")
    assert not hcm(default).HasField("http2_protocol_options")

"""Every wire-level encoder equals what protobuf's deterministic serialization produces."""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import duration_pb2
from hypothesis import given
from hypothesis import strategies as st

from xds_server import delta, sotw, wire
from xds_server.builders.common import endpoints
from xds_server.builders.routes import Host, Prefix, by_host, by_prefix
from xds_server.builders.secrets import _identity
from xds_server.resources import Resource, resource_from_bytes
from xds_server.stream import Push
from xds_server.types import CLUSTER

text = st.text(min_size=1, max_size=300)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True)


def _serialize(message: object) -> bytes:
    return message.SerializeToString(deterministic=True)  # type: ignore[attr-defined,no-any-return]


@given(host=text, port=st.integers(min_value=0, max_value=65535))
def test_endpoints(host: str, port: int) -> None:
    expected = endpoint_pb2.ClusterLoadAssignment(
        endpoints=[
            ec.LocalityLbEndpoints(
                lb_endpoints=[
                    ec.LbEndpoint(
                        endpoint=ec.Endpoint(
                            address=address_pb2.Address(
                                socket_address=address_pb2.SocketAddress(
                                    address=host, port_value=port
                                )
                            )
                        )
                    )
                ]
            )
        ]
    )
    assert endpoints(host, port) == _serialize(expected)


@given(
    hosts=st.lists(
        st.tuples(label, st.lists(text, min_size=1, max_size=3), label, st.booleans()),
        max_size=5,
    )
)
def test_host_table(hosts: list[tuple[str, list[str], str, bool]]) -> None:
    table = by_host("thanos", [Host(n, tuple(d), c, s) for n, d, c, s in hosts])
    expected = route_pb2.RouteConfiguration(name="thanos")
    for name, domains, cluster, streaming in hosts:
        action = rc.RouteAction(cluster=cluster)
        if streaming:
            action.timeout.CopyFrom(duration_pb2.Duration())
        expected.virtual_hosts.append(
            rc.VirtualHost(
                name=name,
                domains=domains,
                routes=[rc.Route(match=rc.RouteMatch(prefix="/"), route=action)],
            )
        )
    assert table.body == _serialize(expected)
    assert table.refs.get("type.googleapis.com/envoy.config.cluster.v3.Cluster", set()) == {
        c for _, _, c, _ in hosts
    }


@given(prefixes=st.lists(st.tuples(label, label), max_size=5))
def test_prefix_table(prefixes: list[tuple[str, str]]) -> None:
    table = by_prefix("prometheus-ui", [Prefix(f"/prom/{p}/", c) for p, c in prefixes])
    vhost = rc.VirtualHost(name="prometheus-ui", domains=["*"])
    for p, cluster in prefixes:
        vhost.routes.append(
            rc.Route(
                match=rc.RouteMatch(path=f"/prom/{p}"),
                redirect=rc.RedirectAction(path_redirect=f"/prom/{p}/"),
            )
        )
        vhost.routes.append(
            rc.Route(
                match=rc.RouteMatch(prefix=f"/prom/{p}/"),
                route=rc.RouteAction(cluster=cluster, prefix_rewrite="/"),
            )
        )
    expected = route_pb2.RouteConfiguration(name="prometheus-ui", virtual_hosts=[vhost])
    assert table.body == _serialize(expected)


@given(cert=st.binary(min_size=1, max_size=3000), key=st.binary(min_size=1, max_size=500))
def test_identity_secret(cert: bytes, key: bytes) -> None:
    expected = secret_pb2.Secret(
        name="identity",
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=cert),
            private_key=base_pb2.DataSource(inline_bytes=key),
        ),
    )
    assert _identity(cert, key).body == _serialize(expected)


def test_defaults_are_left_out_as_proto3_does_but_oneof_members_are_written() -> None:
    assert wire.text(1, "") == b""
    assert wire.oneof_uint(3, 0) == _serialize(address_pb2.SocketAddress(port_value=0))
    assert wire.oneof_uint(3, 300) == _serialize(address_pb2.SocketAddress(port_value=300))


resource = st.builds(
    lambda name, body: resource_from_bytes(CLUSTER, name, body),
    st.text(min_size=1, max_size=20),
    st.binary(max_size=400),
)


@given(
    resources=st.lists(resource, max_size=6, unique_by=lambda r: r.name),
    version=st.text(max_size=20),
    nonce=st.text(max_size=5),
)
def test_sotw_response(resources: list[Resource], version: str, nonce: str) -> None:
    push = Push(CLUSTER, version, nonce, {r.name: r for r in resources}, (), ())
    expected = discovery_pb2.DiscoveryResponse(
        version_info=version,
        type_url=CLUSTER,
        nonce=nonce,
        resources=[r.to_any() for r in sorted(resources, key=lambda r: r.name)],
    )
    assert sotw.encode(push) == _serialize(expected)


@given(
    resources=st.lists(resource, max_size=6, unique_by=lambda r: r.name),
    removed=st.lists(st.text(max_size=10), max_size=4),
    version=st.text(max_size=20),
    nonce=st.text(max_size=5),
)
def test_delta_response(
    resources: list[Resource], removed: list[str], version: str, nonce: str
) -> None:
    push = Push(CLUSTER, version, nonce, {}, tuple(resources), tuple(removed))
    expected = discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=version,
        type_url=CLUSTER,
        nonce=nonce,
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=r.to_any())
            for r in resources
        ],
        removed_resources=removed,
    )
    assert delta.encode(push) == _serialize(expected)

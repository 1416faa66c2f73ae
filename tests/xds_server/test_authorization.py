"""The alert intake's allow-list: encoded on the wire exactly as the protobuf classes would,
built from the members' principals, and failing closed."""

from __future__ import annotations

from envoy.config.rbac.v3 import rbac_pb2 as rbac_config
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_http
from envoy.type.matcher.v3 import string_pb2

from atlas.config import Settings
from atlas.pki import cluster_uri
from tests.xds_server.fixtures import TOPOLOGY, creds
from xds_server import wire
from xds_server.builders.authorization import (
    POLICY,
    RBAC_FILTER,
    allow_list,
    deny_all_filter,
    principal_entry,
)
from xds_server.builders.observability import build_observability
from xds_server.types import LISTENER, ROUTE


def expected(uris: list[str]) -> bytes:
    rules = rbac_config.RBAC(action=rbac_config.RBAC.ALLOW)
    if uris:
        rules.policies[POLICY].CopyFrom(
            rbac_config.Policy(
                permissions=[rbac_config.Permission(any=True)],
                principals=[
                    rbac_config.Principal(
                        authenticated=rbac_config.Principal.Authenticated(
                            principal_name=string_pb2.StringMatcher(exact=u)
                        )
                    )
                    for u in uris
                ],
            )
        )
    table = route_pb2.RouteConfiguration()
    table.typed_per_filter_config[RBAC_FILTER].CopyFrom(
        wire.packed(rbac_http.RBACPerRoute(rbac=rbac_http.RBAC(rules=rules)))
    )
    return bytes(table.SerializeToString(deterministic=True))


def test_the_allow_list_is_byte_for_byte_what_protobuf_writes() -> None:
    uris = ["urn:atlas:member:east:0011223344556677", cluster_uri("west")]
    assert allow_list(principal_entry(u) for u in uris) == expected(uris)


def test_no_member_denies_everything() -> None:
    assert allow_list([]) == expected([])
    parsed = route_pb2.RouteConfiguration.FromString(allow_list([]))
    per_route = rbac_http.RBACPerRoute()
    parsed.typed_per_filter_config[RBAC_FILTER].Unpack(per_route)
    assert per_route.rbac.HasField("rules") and not per_route.rbac.rules.policies


def test_the_filter_alone_admits_nobody() -> None:
    config = rbac_http.RBAC()
    deny_all_filter().typed_config.Unpack(config)
    assert config.HasField("rules") and config.rules.action == rbac_config.RBAC.ALLOW
    assert not config.rules.policies


def test_the_observability_envoy_admits_only_the_members_given() -> None:
    members = {"east": "urn:atlas:member:east:aa", "west": ""}
    obs = build_observability(TOPOLOGY, Settings(), creds("atlas"), "atlas", members=members)
    table = route_pb2.RouteConfiguration.FromString(obs.snapshot.of(ROUTE)["alert-intake"].body)
    per_route = rbac_http.RBACPerRoute()
    table.typed_per_filter_config[RBAC_FILTER].Unpack(per_route)
    principals = per_route.rbac.rules.policies[POLICY].principals
    names = [p.authenticated.principal_name.exact for p in principals]
    assert names == ["urn:atlas:member:east:aa", cluster_uri("west")], "older creds: identity"
    assert [v.name for v in table.virtual_hosts][-1] == "no-alertmanager"
    listener = obs.snapshot.of(LISTENER)["alert-intake"]
    assert RBAC_FILTER.encode() in listener.body, "the listener carries the RBAC filter"
    alone = build_observability(TOPOLOGY, Settings(), creds("atlas"), "atlas", members={})
    table = route_pb2.RouteConfiguration.FromString(alone.snapshot.of(ROUTE)["alert-intake"].body)
    table.typed_per_filter_config[RBAC_FILTER].Unpack(per_route)
    assert not per_route.rbac.rules.policies, "no member: nobody"

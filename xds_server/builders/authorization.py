"""Who may use the alert intake: an allow-list of the current cluster memberships, as RBAC.

The listener's TLS already requires a client certificate from Atlas's CA with some downstream
identity; that alone would admit a removed cluster, and a credential of an earlier membership
of a re-added one, for as long as it has not expired. So the alert-intake listener carries
Envoy's RBAC filter denying everything, and its route table overrides that with the current
allow-list (``RouteConfiguration.typed_per_filter_config``): one exact URI SAN per cluster, its
membership URI (``atlas.pki.MEMBERSHIP_PREFIX``), or its SPIFFE ID for a cluster whose
credentials predate membership tokens.

Route tables travel over RDS and apply to the next request, also on connections that are
already open: a removed cluster's alerts are refused (403) as soon as the observability Envoy
has the new table, without a listener change that would drain every connection. At 10,000
clusters the list is assembled from cached per-cluster bytes, like the route tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from envoy.config.rbac.v3 import rbac_pb2 as rbac_config
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_http
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import string_pb2

from xds_server import wire

__all__ = ["RBAC_FILTER", "allow_list", "allow_list_head", "deny_all_filter", "principal_entry"]

RBAC_FILTER = "envoy.filters.http.rbac"
"""The filter's name in the HCM: the key its per-route configuration is found under."""
POLICY = "current-members"

_PER_FILTER = wire.number(route_pb2.RouteConfiguration, "typed_per_filter_config")
_PER_ROUTE_RBAC = wire.number(rbac_http.RBACPerRoute, "rbac")
_HTTP_RULES = wire.number(rbac_http.RBAC, "rules")
_POLICIES = wire.number(rbac_config.RBAC, "policies")
_PERMISSIONS = wire.number(rbac_config.Policy, "permissions")
_PRINCIPALS = wire.number(rbac_config.Policy, "principals")
_ANY_PERMISSION = wire.number(rbac_config.Permission, "any")
_AUTHENTICATED = wire.number(rbac_config.Principal, "authenticated")
_PRINCIPAL_NAME = wire.number(rbac_config.Principal.Authenticated, "principal_name")
_EXACT = wire.number(string_pb2.StringMatcher, "exact")
_ANY_TYPE_URL, _ANY_VALUE = 1, 2
_MAP_KEY, _MAP_VALUE = 1, 2
_PER_ROUTE_TYPE = "type.googleapis.com/" + rbac_http.RBACPerRoute.DESCRIPTOR.full_name
_EVERY_REQUEST = wire.delimited(_PERMISSIONS, wire.oneof_uint(_ANY_PERMISSION, 1))


def deny_all_filter() -> hcm_pb2.HttpFilter:
    """The HCM's RBAC filter with no policy (ALLOW of nothing): a route table without the
    allow-list admits nobody, so a missing override fails closed."""
    rules = rbac_http.RBAC(rules=rbac_config.RBAC(action=rbac_config.RBAC.ALLOW))
    return hcm_pb2.HttpFilter(name=RBAC_FILTER, typed_config=wire.packed(rules))


@lru_cache(maxsize=262_144)
def principal_entry(uri: str) -> bytes:
    """One ``Policy.principals`` entry: a peer certificate with this exact URI SAN.

    Kept for every member (twice the 100,000 clusters a build is measured at): the allow-list
    is joined again on every change, and a cache smaller than the fleet misses every entry."""
    matcher = wire.text(_EXACT, uri)
    authenticated = wire.delimited(_PRINCIPAL_NAME, matcher)
    return wire.delimited(_PRINCIPALS, wire.delimited(_AUTHENTICATED, authenticated))


def allow_list(entries: Iterable[bytes]) -> bytes:
    """The route table's ``typed_per_filter_config`` field admitting only ``entries`` (from
    ``principal_entry``); none at all denies every request."""
    principals = b"".join(entries)
    return allow_list_head(len(principals)) + principals


def allow_list_head(size: int) -> bytes:
    """``allow_list`` up to its principals, ``size`` bytes of them (they come last at every
    level), so that the 100,000 of a large fleet can stay in blocks until the table is
    joined."""
    head = b""
    if size:  # a policy must name at least one principal
        policy = _around(_MAP_VALUE, _EVERY_REQUEST, size)
        head = _around(_POLICIES, wire.text(_MAP_KEY, POLICY) + policy, size)
    per_route = _around(_PER_ROUTE_RBAC, _around(_HTTP_RULES, head, size), size)
    packed = wire.text(_ANY_TYPE_URL, _PER_ROUTE_TYPE) + _around(_ANY_VALUE, per_route, size)
    entry = wire.text(_MAP_KEY, RBAC_FILTER) + _around(_MAP_VALUE, packed, size)
    return _around(_PER_FILTER, entry, size)


def _around(field_number: int, head: bytes, size: int) -> bytes:
    """A message field whose payload is ``head`` and then ``size`` bytes written later."""
    return wire.header(field_number, len(head) + size) + head

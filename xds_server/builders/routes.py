"""Route configurations: virtual hosts by ``:authority``/``Host``, or by path prefix.

Route tables grow with the number of clusters and change whenever one cluster does, so each
entry is serialized once (cached) and a table is assembled by joining entry bytes on the
wire (see ``resources.length_delimited``), never by rebuilding every entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from xds_server.builders.common import seconds
from xds_server.resources import Resource, length_delimited, resource_from_bytes
from xds_server.types import CLUSTER, ROUTE

__all__ = [
    "Host",
    "Prefix",
    "by_host",
    "by_prefix",
    "host_entries",
    "host_table",
    "prefix_entries",
    "prefix_table",
]

_VIRTUAL_HOSTS = route_pb2.RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number
_ROUTES = rc.VirtualHost.DESCRIPTOR.fields_by_name["routes"].number
_ENTRIES = 65536


@dataclass(frozen=True)
class Host:
    """A virtual host: these domains go to ``cluster``."""

    name: str
    domains: tuple[str, ...]
    cluster: str
    streaming: bool = False
    """gRPC streams (Thanos Series) must not be cut by the default 15 s route timeout."""


@dataclass(frozen=True)
class Prefix:
    """``/<prefix>/…`` goes to ``cluster`` with the prefix rewritten to ``/``."""

    prefix: str
    cluster: str


def _forward(cluster: str, *, streaming: bool = False, rewrite: str = "") -> rc.RouteAction:
    action = rc.RouteAction(cluster=cluster, prefix_rewrite=rewrite)
    if streaming:
        action.timeout.CopyFrom(seconds(0))
    return action


def _serialize(message: object) -> bytes:
    return message.SerializeToString(deterministic=True)  # type: ignore[attr-defined,no-any-return]


@lru_cache(maxsize=_ENTRIES)
def _catch_all_route(cluster: str, streaming: bool) -> bytes:
    """``/`` to one cluster: shared by every virtual host that sends everything there."""
    route = rc.Route(match=rc.RouteMatch(prefix="/"), route=_forward(cluster, streaming=streaming))
    return length_delimited(_ROUTES, _serialize(route))


@lru_cache(maxsize=_ENTRIES)
def _vhost_entry(h: Host) -> bytes:
    vhost = _serialize(rc.VirtualHost(name=h.name, domains=list(h.domains)))
    return length_delimited(_VIRTUAL_HOSTS, vhost + _catch_all_route(h.cluster, h.streaming))


@lru_cache(maxsize=_ENTRIES)
def _prefix_entries(p: Prefix) -> bytes:
    base = p.prefix.rstrip("/")
    redirect = rc.Route(
        match=rc.RouteMatch(path=base), redirect=rc.RedirectAction(path_redirect=base + "/")
    )
    forward = rc.Route(
        match=rc.RouteMatch(prefix=base + "/"), route=_forward(p.cluster, rewrite="/")
    )
    return length_delimited(_ROUTES, _serialize(redirect)) + length_delimited(
        _ROUTES, _serialize(forward)
    )


def _head(name: str) -> bytes:
    return _serialize(route_pb2.RouteConfiguration(name=name))


def host_entries(hosts: Iterable[Host]) -> bytes:
    """Serialized virtual hosts, to be joined into a table by ``host_table``."""
    return b"".join(_vhost_entry(h) for h in hosts)


def prefix_entries(prefixes: Iterable[Prefix]) -> bytes:
    """Serialized prefix routes, to be joined into a table by ``prefix_table``."""
    return b"".join(_prefix_entries(p) for p in prefixes)


def host_table(name: str, entries: Iterable[bytes], clusters: Iterable[str]) -> Resource:
    """A RouteConfiguration from virtual-host entries; ``clusters`` are what they route to."""
    body = _head(name) + b"".join(entries)
    return resource_from_bytes(ROUTE, name, body, {(CLUSTER, c) for c in clusters})


def prefix_table(name: str, entries: Iterable[bytes], clusters: Iterable[str]) -> Resource:
    """One catch-all virtual host holding prefix-route entries."""
    vhost = _serialize(rc.VirtualHost(name=name, domains=["*"])) + b"".join(entries)
    body = _head(name) + length_delimited(_VIRTUAL_HOSTS, vhost)
    return resource_from_bytes(ROUTE, name, body, {(CLUSTER, c) for c in clusters})


def by_host(name: str, hosts: Iterable[Host]) -> Resource:
    """Unknown names get Envoy's 404: a typo must not reach some other cluster."""
    hosts = list(hosts)
    return host_table(name, [host_entries(hosts)], (h.cluster for h in hosts))


def by_prefix(name: str, prefixes: Iterable[Prefix]) -> Resource:
    """``/p`` redirects to ``/p/`` so relative links work; ``/p/…`` is rewritten to ``/…``."""
    prefixes = list(prefixes)
    return prefix_table(name, [prefix_entries(prefixes)], (p.cluster for p in prefixes))

"""Route configurations: virtual hosts by ``:authority``/``Host``, or by path prefix.

Route tables grow with the number of clusters and change whenever one cluster does, so each
entry is encoded once (cached) and a table is assembled by joining entry bytes on the wire
(see ``wire.delimited``), never by rebuilding every entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from xds_server import wire
from xds_server.resources import Refs, Resource, refs, resource_from_bytes, resource_from_pieces
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
    "prefix_table_of_blocks",
    "table_of_blocks",
]

_VIRTUAL_HOSTS = wire.number(route_pb2.RouteConfiguration, "virtual_hosts")
_VHOST_NAME = wire.number(rc.VirtualHost, "name")
_DOMAINS = wire.number(rc.VirtualHost, "domains")
_ROUTES = wire.number(rc.VirtualHost, "routes")
_MATCH = wire.number(rc.Route, "match")
_ACTION = wire.number(rc.Route, "route")
_REDIRECT = wire.number(rc.Route, "redirect")
_PREFIX = wire.number(rc.RouteMatch, "prefix")
_PATH = wire.number(rc.RouteMatch, "path")
_CLUSTER = wire.number(rc.RouteAction, "cluster")
_PREFIX_REWRITE = wire.number(rc.RouteAction, "prefix_rewrite")
_TIMEOUT = wire.number(rc.RouteAction, "timeout")
_PATH_REDIRECT = wire.number(rc.RedirectAction, "path_redirect")
_TABLE_NAME = wire.number(route_pb2.RouteConfiguration, "name")


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


def _forward(cluster: str, *, streaming: bool = False, rewrite: str = "") -> bytes:
    """A RouteAction; a zero timeout (streaming) is an empty Duration, present."""
    action = wire.text(_CLUSTER, cluster) + wire.text(_PREFIX_REWRITE, rewrite)
    if streaming:
        action += wire.delimited(_TIMEOUT, b"")
    return wire.delimited(_ACTION, action)


@lru_cache(maxsize=65536)
def _catch_all_route(cluster: str, streaming: bool) -> bytes:
    """``/`` to one cluster: shared by every virtual host that sends everything there."""
    route = wire.delimited(_MATCH, wire.text(_PREFIX, "/")) + _forward(cluster, streaming=streaming)
    return wire.delimited(_ROUTES, route)


def _vhost_head(name: str, domains: Iterable[str]) -> bytes:
    return wire.text(_VHOST_NAME, name) + b"".join(wire.text(_DOMAINS, d) for d in domains)


def _vhost_entry(h: Host) -> bytes:
    vhost = _vhost_head(h.name, h.domains) + _catch_all_route(h.cluster, h.streaming)
    return wire.delimited(_VIRTUAL_HOSTS, vhost)


def _prefix_entries(p: Prefix) -> bytes:
    base = p.prefix.rstrip("/")
    redirect = wire.delimited(_MATCH, wire.text(_PATH, base)) + wire.delimited(
        _REDIRECT, wire.text(_PATH_REDIRECT, base + "/")
    )
    forward = wire.delimited(_MATCH, wire.text(_PREFIX, base + "/")) + _forward(
        p.cluster, rewrite="/"
    )
    return wire.delimited(_ROUTES, redirect) + wire.delimited(_ROUTES, forward)


def _head(name: str) -> bytes:
    return wire.text(_TABLE_NAME, name)


def host_entries(hosts: Iterable[Host]) -> bytes:
    """Serialized virtual hosts, to be joined into a table by ``host_table``."""
    return b"".join(_vhost_entry(h) for h in hosts)


def prefix_entries(prefixes: Iterable[Prefix]) -> bytes:
    """Serialized prefix routes, to be joined into a table by ``prefix_table``."""
    return b"".join(_prefix_entries(p) for p in prefixes)


def host_table(name: str, entries: Iterable[bytes], needs: Refs, tail: bytes = b"") -> Resource:
    """A RouteConfiguration from virtual-host entries; ``needs`` names the clusters used.
    ``tail``: encoded fields numbered after ``virtual_hosts`` (per-filter configuration).
    One join: at 100,000 clusters a table is about 15 MB, and each ``+`` copies it."""
    body = b"".join([_head(name), *entries, tail])
    return resource_from_bytes(ROUTE, name, body, needs)


def prefix_table(name: str, entries: Sequence[bytes], needs: Refs) -> Resource:
    """One catch-all virtual host holding prefix-route entries (joined once, as above)."""
    body = b"".join([_head(name), _catch_all_head(name, entries), *entries])
    return resource_from_bytes(ROUTE, name, body, needs)


def _catch_all_head(name: str, entries: Sequence[bytes]) -> bytes:
    """The ``*`` virtual host up to its routes, ``entries`` (written after it)."""
    head = _vhost_head(name, ("*",))
    return wire.header(_VIRTUAL_HOSTS, len(head) + sum(map(len, entries))) + head


def table_of_blocks(
    name: str,
    blocks: Sequence[bytes],
    digests: Sequence[bytes],
    needs: Refs,
    *,
    before: bytes = b"",
    after: bytes = b"",
) -> Resource:
    """A RouteConfiguration whose fields after its name are ``before``, the blocks (entries
    kept in ``blocks.Blocks``, with their digests) and ``after``, all encoded already."""
    pieces = [_head(name) + before, *blocks, after]
    return resource_from_pieces(ROUTE, name, pieces, [None, *digests, None], needs)


def prefix_table_of_blocks(
    name: str, blocks: Sequence[bytes], digests: Sequence[bytes], needs: Refs
) -> Resource:
    """``prefix_table`` of entries kept in blocks."""
    return table_of_blocks(name, blocks, digests, needs, before=_catch_all_head(name, blocks))


def by_host(
    name: str, hosts: Iterable[Host], *, otherwise: bytes = b"", tail: bytes = b""
) -> Resource:
    """Unknown names get Envoy's 404 (or the ``otherwise`` catch-all virtual host): a typo
    must not reach some other cluster."""
    hosts = list(hosts)
    needs = refs((CLUSTER, (h.cluster for h in hosts)))
    return host_table(name, [host_entries(hosts), otherwise], needs, tail)


def by_prefix(name: str, prefixes: Iterable[Prefix]) -> Resource:
    """``/p`` redirects to ``/p/`` so relative links work; ``/p/…`` is rewritten to ``/…``."""
    prefixes = list(prefixes)
    needs = refs((CLUSTER, (p.cluster for p in prefixes)))
    return prefix_table(name, [prefix_entries(prefixes)], needs)

"""Route configurations: virtual hosts by ``:authority``/``Host``, or by path prefix."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from xds_server.builders.common import seconds
from xds_server.resources import Resource, make_resource
from xds_server.types import CLUSTER, ROUTE

__all__ = ["Host", "Prefix", "by_host", "by_prefix"]


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


def _resource(name: str, hosts: Sequence[rc.VirtualHost], clusters: Iterable[str]) -> Resource:
    config = route_pb2.RouteConfiguration(name=name, virtual_hosts=hosts)
    return make_resource(ROUTE, name, config, {(CLUSTER, c) for c in clusters})


def by_host(name: str, hosts: Iterable[Host]) -> Resource:
    """Unknown names get Envoy's 404: a typo must not reach some other cluster."""
    hosts = list(hosts)
    vhosts = [
        rc.VirtualHost(
            name=h.name,
            domains=list(h.domains),
            routes=[
                rc.Route(
                    match=rc.RouteMatch(prefix="/"),
                    route=_forward(h.cluster, streaming=h.streaming),
                )
            ],
        )
        for h in hosts
    ]
    return _resource(name, vhosts, (h.cluster for h in hosts))


def by_prefix(name: str, prefixes: Iterable[Prefix]) -> Resource:
    """One catch-all virtual host; ``/p`` redirects to ``/p/`` so relative links work."""
    prefixes = list(prefixes)
    routes: list[rc.Route] = []
    for p in prefixes:
        base = p.prefix.rstrip("/")
        routes.append(
            rc.Route(
                match=rc.RouteMatch(path=base),
                redirect=rc.RedirectAction(path_redirect=base + "/"),
            )
        )
        routes.append(
            rc.Route(match=rc.RouteMatch(prefix=base + "/"), route=_forward(p.cluster, rewrite="/"))
        )
    vhost = rc.VirtualHost(name=name, domains=["*"], routes=routes)
    return _resource(name, [vhost], (p.cluster for p in prefixes))

"""The observability Envoy (node ``atlas``): listeners 10900-10904 and their upstreams.

This node grows with the topology: three upstreams, two virtual hosts and two prefix routes per
downstream cluster. Each cluster's share is built once (``_ClusterPart``), and a build that is
given the previous one (``ObservabilityBuild``) and the clusters that may have changed touches
only those: it patches the upstream set and the route tables' entries (``_Tables``, kept in
name-cut blocks, ``blocks.py``), and joins the tables again from the blocks, so a one-cluster
change at 100,000 clusters runs no Python loop over the clusters and re-hashes one block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import chain
from types import MappingProxyType

from atlas.config import Settings
from atlas.model import Alertmanager, DownstreamCluster, Topology, sidecar_target
from atlas.names import is_ip
from atlas.pki import cluster_uri
from xds_server.builders.authorization import allow_list_head, principal_entry
from xds_server.builders.blocks import Blocks
from xds_server.builders.common import (
    NO_FLOW,
    TLS_REFS,
    ListenerLimits,
    PeerMatch,
    cluster,
    cluster_body,
    http_listener,
    tcp_proxy_listener,
    thanos_flow,
)
from xds_server.builders.refusals import KNOWN_LISTED, no_alertmanager_entry, refusal_entry
from xds_server.builders.routes import (
    Host,
    Prefix,
    host_entries,
    prefix_entries,
    prefix_table_of_blocks,
    table_of_blocks,
)
from xds_server.builders.secrets import NodeCredentials, secret_set
from xds_server.builders.stencil import Stencil
from xds_server.resource_set import ResourceSet
from xds_server.resources import Resource, refs, resource_from_bytes
from xds_server.snapshot import Snapshot
from xds_server.types import CLUSTER, LISTENER, ROUTE, SECRET

__all__ = [
    "CONTROL_PLANE_CLUSTER",
    "ObservabilityBuild",
    "alert_hosts",
    "build_observability",
    "upstream_name",
]

CONTROL_PLANE_CLUSTER = "atlas_control_plane"
ANY_DOWNSTREAM = PeerMatch(cluster_uri(""), prefix=True)


def upstream_name(cluster_name: str, service: str) -> str:
    """``east_thanos``: cluster names are DNS labels, so ``_`` cannot collide."""
    return f"{cluster_name}_{service}"


@dataclass(frozen=True)
class _ClusterPart:
    """Everything one downstream cluster adds to the observability node, built once."""

    upstreams: tuple[Resource, ...]
    thanos_hosts: bytes
    prometheus_prefix: bytes
    alertmanager_prefix: bytes


_SERVICES = ("thanos", "prometheus", "alertmanager")


def _cluster_part(c: DownstreamCluster, settings: Settings) -> _ClusterPart:
    """Filled in from the stencil of its shape: the encoding depends on the name and address
    only through their bytes (and whether the address is an IP)."""
    static = is_ip(c.envoy_address)
    *bodies, thanos_hosts, prometheus_prefix, alertmanager_prefix = _PART(
        (c.name, c.envoy_address), static, c.replicas, settings
    )
    upstreams = tuple(
        resource_from_bytes(CLUSTER, upstream_name(c.name, svc), body, TLS_REFS)
        for svc, body in zip(_SERVICES, bodies, strict=True)
    )
    return _ClusterPart(upstreams, thanos_hosts, prometheus_prefix, alertmanager_prefix)


def _encode_part(
    name: str, address: str, static: bool, replicas: int, settings: Settings
) -> tuple[bytes, ...]:
    """Bodies of the three upstreams, then the thanos hosts and the two prefix entries."""
    ports = settings.downstream_ports
    peer = PeerMatch(cluster_uri(name))
    flow = thanos_flow(settings)
    bodies = tuple(
        cluster_body(
            upstream_name(name, svc),
            address,
            port,
            http2=True,
            peer=peer,
            connect_timeout=settings.network.connect_timeout,
            static=static,
            flow=flow if svc == "thanos" else NO_FLOW,
        )
        for svc, port in zip(
            _SERVICES, (ports.thanos, ports.prometheus, ports.alertmanager), strict=True
        )
    )
    thanos = upstream_name(name, "thanos")
    return (
        *bodies,
        host_entries(
            Host(f"{name}-{i}", (sidecar_target(name, i),), thanos, streaming=True)
            for i in range(replicas)
        ),
        prefix_entries([Prefix(f"/prom/{name}/", upstream_name(name, "prometheus"))]),
        prefix_entries([Prefix(f"/am/{name}/", upstream_name(name, "alertmanager"))]),
    )


_PART = Stencil(_encode_part, values=2)


@dataclass(frozen=True)
class _Tables:
    """Every downstream cluster's entries in the route tables, as rows of ``Blocks`` named
    by the cluster: its thanos hosts, prometheus and alertmanager prefixes, and its
    principal entry in the alert intake's allow-list (b"" if not a member)."""

    rows: Blocks
    replicas: int
    """Thanos replicas of all clusters together (the refusal message counts them)."""

    @classmethod
    def of(
        cls,
        clusters: Sequence[DownstreamCluster],
        parts: Mapping[str, _ClusterPart],
        members: Mapping[str, str],
    ) -> _Tables:
        ordered = [parts[c.name] for c in clusters]
        columns = (
            [p.thanos_hosts for p in ordered],
            [p.prometheus_prefix for p in ordered],
            [p.alertmanager_prefix for p in ordered],
            [_allowed(c.name, members) for c in clusters],
        )
        rows = Blocks.of([c.name for c in clusters], columns)
        return cls(rows, sum(c.replicas for c in clusters))

    def patch(
        self,
        removed: Iterable[DownstreamCluster],
        put: Iterable[tuple[DownstreamCluster, _ClusterPart, DownstreamCluster | None]],
        members: Mapping[str, str],
    ) -> _Tables:
        """Without ``removed``; with each ``(cluster, part, as it was or None)`` of ``put``
        replacing its entries or inserted in name order."""
        removed, put = list(removed), list(put)
        replicas = self.replicas - sum(c.replicas for c in removed)
        replicas += sum(c.replicas - (was.replicas if was is not None else 0) for c, _, was in put)
        rows = self.rows.patch(
            (c.name for c in removed),
            ((c.name, (*_entries(part), _allowed(c.name, members))) for c, part, _ in put),
        )
        return _Tables(rows, replicas)


def _entries(part: _ClusterPart) -> tuple[bytes, bytes, bytes]:
    return part.thanos_hosts, part.prometheus_prefix, part.alertmanager_prefix


def _allowed(name: str, members: Mapping[str, str]) -> bytes:
    if name not in members:
        return b""
    return principal_entry(members[name] or cluster_uri(name))


@dataclass(frozen=True)
class ObservabilityBuild:
    """The observability node's snapshot and what the next build patches it from."""

    snapshot: Snapshot
    settings: Settings
    clusters: MappingProxyType[str, DownstreamCluster]
    """Each downstream cluster as its part was built from."""
    parts: MappingProxyType[str, _ClusterPart]
    fixed: tuple[Resource, ...]
    """Upstreams not owned by a downstream cluster: the control plane, the Alertmanagers."""
    tables: _Tables


def build_observability(
    topology: Topology,
    settings: Settings,
    creds: NodeCredentials,
    node: str,
    previous: ObservabilityBuild | None = None,
    members: Mapping[str, str] = MappingProxyType({}),
    touched: Sequence[DownstreamCluster] | None = None,
) -> ObservabilityBuild:
    """The node's snapshot; with ``previous``, only clusters that changed are rebuilt.

    ``members``: the clusters that may send alerts, each with the URI SAN that admits its
    current credential (``NodeCredentials.principal``); every other peer is refused.

    ``touched``: with ``previous``, the clusters of ``topology`` that may differ from it, in
    their definition or their membership; every other cluster of ``topology`` is as it was
    then. None: any may have changed (each is compared).

    The result is the same as a build without ``previous`` (a property test holds it to
    that); ``previous`` and ``touched`` only save work.
    """
    if previous is not None and previous.settings != settings:
        previous = None
    if previous is None:
        return _cold(topology, settings, creds, node, members)
    clusters = previous.clusters.copy()  # the view's copy runs at C speed; dict(view) does not
    parts = previous.parts.copy()
    candidates = topology.clusters if touched is None else touched
    changed: list[str] = []
    put: list[tuple[DownstreamCluster, _ClusterPart, DownstreamCluster | None]] = []
    for c in candidates:
        old = clusters.get(c.name)
        if old is None or not (old is c or old == c):
            clusters[c.name], parts[c.name] = c, _cluster_part(c, settings)
            changed.append(c.name)
        put.append((c, parts[c.name], old))
    if len(clusters) != len(topology.clusters):  # some were removed: only now is it looked for
        gone = [clusters[n] for n in clusters.keys() - topology.by_name.keys()]
    else:
        gone = []
    for c in gone:
        del clusters[c.name], parts[c.name]
    new_names = any(put_old is None for _, _, put_old in put)
    remove = [
        r.name
        for n in chain((c.name for c in gone), changed)
        if n in previous.parts
        for r in previous.parts[n].upstreams
    ]
    remove += [r.name for r in previous.fixed]
    fixed = _fixed_upstreams(topology, settings)
    add = chain(fixed, *(parts[n].upstreams for n in changed))
    upstreams = previous.snapshot.sets[CLUSTER].patch(remove, add)
    if touched is None:
        tables = _Tables.of(topology.clusters, parts, members)
    else:
        tables = previous.tables.patch(gone, put, members)
    same_names = None if gone or new_names else previous.snapshot.sets[ROUTE]
    snapshot = Snapshot.assemble(
        node,
        {
            SECRET: secret_set(creds),
            CLUSTER: upstreams,
            LISTENER: _listeners(settings),
            ROUTE: _route_tables(topology, tables, same_names),
        },
        since=previous.snapshot,
    )
    return ObservabilityBuild(
        snapshot, settings, MappingProxyType(clusters), MappingProxyType(parts), fixed, tables
    )


def _cold(
    topology: Topology,
    settings: Settings,
    creds: NodeCredentials,
    node: str,
    members: Mapping[str, str],
) -> ObservabilityBuild:
    clusters = {c.name: c for c in topology.clusters}
    parts = {c.name: _cluster_part(c, settings) for c in topology.clusters}
    fixed = _fixed_upstreams(topology, settings)
    upstreams = ResourceSet.of(CLUSTER, chain(fixed, *(p.upstreams for p in parts.values())))
    tables = _Tables.of(topology.clusters, parts, members)
    snapshot = Snapshot.assemble(
        node,
        {
            SECRET: secret_set(creds),
            CLUSTER: upstreams,
            LISTENER: _listeners(settings),
            ROUTE: _route_tables(topology, tables, None),
        },
    )
    return ObservabilityBuild(
        snapshot, settings, MappingProxyType(clusters), MappingProxyType(parts), fixed, tables
    )


def _fixed_upstreams(topology: Topology, settings: Settings) -> tuple[Resource, ...]:
    net = settings.network
    fixed = [
        cluster(
            CONTROL_PLANE_CLUSTER,
            net.control_plane_address,
            net.control_plane_port,
            http2=False,
            connect_timeout=net.connect_timeout,
        )
    ]
    for replica, am in sorted(_alertmanagers(topology).items()):
        fixed.append(
            cluster(
                f"alertmanager_{replica}",
                am.address,
                am.port,
                http2=False,
                connect_timeout=net.connect_timeout,
            )
        )
    return tuple(fixed)


def _alertmanagers(topology: Topology) -> dict[int, Alertmanager]:
    """One Alertmanager per replica index: the first Service found for it wins."""
    by_replica: dict[int, Alertmanager] = {}
    for am in topology.alertmanagers:
        by_replica.setdefault(am.replica, am)
    return by_replica


def alert_hosts(replica: int) -> tuple[str, ...]:
    """The Hosts a downstream Prometheus sends replica ``replica``'s alerts with: the names
    of the downstream chart's Services (``alertmanager-<i>``, and goatlas.io/atlas's
    ``alertmanager<i>``), alone or followed by a domain (``.monitoring.svc.cluster.local``)."""
    return tuple(
        host
        for base in (f"alertmanager-{replica}", f"alertmanager{replica}")
        for host in (base, f"{base}.*")
    )


_TABLES = ("thanos", "prometheus-ui", "alertmanager-ui")
"""The route tables with an entry per downstream cluster, in ``_SERVICES`` order."""


def _route_tables(
    topology: Topology, tables: _Tables, same_names: ResourceSet | None
) -> ResourceSet:
    """Joined from the clusters' entries (a few ms at 10,000).

    ``same_names`` is the previous route set when the clusters' names are unchanged: the
    tables then route to the same upstreams, and their references are reused as they are.
    """
    rows = tables.rows
    needs = [
        same_names.items[table].refs
        if same_names is not None
        else refs((CLUSTER, [upstream_name(n, service) for n in rows.names()]))
        for table, service in zip(_TABLES, _SERVICES, strict=True)
    ]
    thanos, prometheus, alertmanager, allowed = (rows.column(i) for i in range(4))
    return ResourceSet.of(
        ROUTE,
        (
            table_of_blocks("thanos", *thanos, needs[0], after=_refusals(topology, tables)),
            prefix_table_of_blocks("prometheus-ui", *prometheus, needs[1]),
            prefix_table_of_blocks("alertmanager-ui", *alertmanager, needs[2]),
            _alert_intake(topology, *allowed),
        ),
    )


def _alert_intake(topology: Topology, blocks: list[bytes], digests: list[bytes]) -> Resource:
    """Alerts by replica (``alertmanager-<i>``), admitted by the current members' principals
    (the table's per-filter configuration, whose principals are kept in blocks)."""
    replicas = sorted(_alertmanagers(topology))
    hosts = [Host(f"alertmanager-{r}", alert_hosts(r), f"alertmanager_{r}") for r in replicas]
    before = b"".join(
        (
            host_entries(hosts),
            no_alertmanager_entry(len(replicas)),
            allow_list_head(sum(map(len, blocks))),
        )
    )
    needs = refs((CLUSTER, (h.cluster for h in hosts)))
    return table_of_blocks("alert-intake", blocks, digests, needs, before=before)


def _refusals(topology: Topology, tables: _Tables) -> bytes:
    """The thanos table's last virtual host: unknown names get a message, not an empty 404."""
    listed: tuple[str, ...] = ()
    if tables.replicas <= KNOWN_LISTED:
        listed = tuple(f"{c.name}-{i}" for c in topology.clusters for i in range(c.replicas))
    return refusal_entry(listed, tables.replicas, tables.rows.count)


@lru_cache(maxsize=16)
def _listeners(settings: Settings) -> ResourceSet:
    """The front door: every listener's limits are set from ``settings.envoy``, on purpose."""
    ports = settings.observability_ports
    listen = settings.network.observability_listen_address
    envoy = settings.envoy
    log = envoy.access_log
    common = ListenerLimits(
        max_request_headers_kb=envoy.max_request_headers_kb,
        request_headers_timeout=envoy.request_headers_timeout,
        idle_timeout=envoy.idle_timeout,
    )
    query = replace(common, max_connections=envoy.client_connections)
    ui = replace(query, request_timeout=envoy.ui_request_timeout)
    intake = replace(common, max_connections=envoy.peer_connections, request_timeout=30.0)
    return ResourceSet.of(
        LISTENER,
        (
            tcp_proxy_listener(
                "ads",
                listen,
                ports.ads,
                target=CONTROL_PLANE_CLUSTER,
                max_connections=envoy.peer_connections,
            ),
            http_listener(
                "thanos",
                listen,
                ports.thanos,
                route="thanos",
                access_log=log,
                by_host=True,
                counted=True,
                limits=query,
                flow=thanos_flow(settings),
            ),
            http_listener(
                "alertmanager-ui",
                listen,
                ports.alertmanager_ui,
                route="alertmanager-ui",
                access_log=log,
                limits=ui,
            ),
            http_listener(
                "alert-intake",
                listen,
                ports.alert_intake,
                route="alert-intake",
                access_log=log,
                peer=ANY_DOWNSTREAM,
                by_host=True,
                authorized=True,
                limits=intake,
            ),
            http_listener(
                "prometheus-ui",
                listen,
                ports.prometheus_ui,
                route="prometheus-ui",
                access_log=log,
                limits=ui,
            ),
        ),
    )

"""A downstream Envoy (node ``<cluster>``): listeners 11901-11904 and the local upstreams.

Downstream nodes are alike: with the usual common listen address, every node's listeners are
byte-identical, and so are the local upstreams of every cluster using the same Service names.
Each type's ``ResourceSet`` is therefore memoized on exactly what it depends on and shared
between nodes; per node only the identity secret and the ``thanos`` route (its SRV target
names) are new. A snapshot for 10,000 nodes is mostly 10,000 references to the same sets.
"""

from __future__ import annotations

from functools import lru_cache

from atlas.config import BIND_ENVOY_ADDRESS, Settings
from atlas.model import DownstreamCluster, Upstream, replica_sidecar, sidecar_target
from atlas.pki import OBSERVABILITY_URI
from xds_server.builders.common import (
    IDENTITY_SECRET,
    PeerMatch,
    cluster,
    http_listener,
    thanos_flow,
)
from xds_server.builders.routes import Host, by_host
from xds_server.builders.secrets import NodeCredentials, secret_set
from xds_server.builders.stencil import Stencil
from xds_server.resource_set import ResourceSet
from xds_server.resources import Refs, Resource, resource_from_bytes
from xds_server.snapshot import Snapshot
from xds_server.types import CLUSTER, LISTENER, ROUTE, SECRET

__all__ = ["OBSERVABILITY_ALERTS", "downstream_snapshot", "with_credentials"]

OBSERVABILITY_ALERTS = "observability_alerts"
OBSERVABILITY = PeerMatch(OBSERVABILITY_URI)
_SHARED = 1024
"""Distinct shapes of downstream nodes kept; nodes of one shape share one set per type."""


def downstream_snapshot(
    c: DownstreamCluster, settings: Settings, creds: NodeCredentials
) -> Snapshot:
    """Not memoized: ``build`` keeps the snapshot of a node whose inputs did not change."""
    net = settings.network
    listen = (
        c.envoy_address
        if net.downstream_listen_address == BIND_ENVOY_ADDRESS
        else net.downstream_listen_address
    )
    return Snapshot.assemble(
        c.name,
        {
            CLUSTER: _local_upstreams(
                c.replicas,
                c.thanos,
                c.thanos_replica_template,
                c.prometheus,
                c.alertmanager,
                settings,
            ),
            LISTENER: _listeners(listen, settings),
            ROUTE: _routes(c.name, c.replicas),
            SECRET: secret_set(creds),
        },
    )


def with_credentials(
    previous: Snapshot, before: NodeCredentials, creds: NodeCredentials
) -> Snapshot:
    """``previous``, built with ``before``, as ``downstream_snapshot`` makes it with ``creds``:
    only the secrets depend on them, and the node's own certificate is kept when only the
    trust bundle changed."""
    held = previous.sets[SECRET].items.get(IDENTITY_SECRET)
    same_leaf = before.cert_pem == creds.cert_pem and before.key_pem == creds.key_pem
    sets = dict(previous.sets)
    sets[SECRET] = secret_set(creds, held if same_leaf else None)
    return Snapshot.assemble(previous.node, sets, since=previous)


@lru_cache(maxsize=_SHARED)
def _local_upstreams(
    replicas: int,
    thanos: Upstream,
    replica_template: str,
    prometheus: Upstream,
    alertmanager: Upstream,
    settings: Settings,
) -> ResourceSet:
    """Keyed on the cluster's fields, not the cluster: clusters alike share one set."""
    sidecars = [replica_sidecar(thanos, replica_template, replicas, i) for i in range(replicas)]
    net = settings.network
    timeout = net.connect_timeout
    flow = thanos_flow(settings)
    upstreams = [
        cluster(
            f"thanos_{i}",
            sidecar.host,
            sidecar.port,
            http2=True,
            connect_timeout=timeout,
            flow=flow,
        )
        for i, sidecar in enumerate(sidecars)
    ]
    upstreams += [
        cluster(
            "prometheus", prometheus.host, prometheus.port, http2=False, connect_timeout=timeout
        ),
        cluster(
            "alertmanager",
            alertmanager.host,
            alertmanager.port,
            http2=False,
            connect_timeout=timeout,
        ),
        cluster(
            OBSERVABILITY_ALERTS,
            net.observability_address,
            settings.observability_ports.alert_intake,
            http2=True,
            peer=OBSERVABILITY,
            connect_timeout=timeout,
        ),
    ]
    return ResourceSet.of(CLUSTER, upstreams)


@lru_cache(maxsize=_SHARED)
def _listeners(listen: str, settings: Settings) -> ResourceSet:
    ports = settings.downstream_ports
    log = settings.envoy.access_log
    return ResourceSet.of(
        LISTENER,
        (
            http_listener(
                "thanos",
                listen,
                ports.thanos,
                route="thanos",
                access_log=log,
                peer=OBSERVABILITY,
                http2_only=True,
                by_host=True,
                flow=thanos_flow(settings),
            ),
            http_listener(
                "alertmanager",
                listen,
                ports.alertmanager,
                route="alertmanager",
                access_log=log,
                peer=OBSERVABILITY,
            ),
            http_listener(
                "alert-relay", listen, ports.alert_relay, route="alert-relay", access_log=log
            ),
            http_listener(
                "prometheus",
                listen,
                ports.prometheus,
                route="prometheus",
                access_log=log,
                peer=OBSERVABILITY,
            ),
        ),
    )


def _routes(name: str, replicas: int) -> ResourceSet:
    """The ``thanos`` route is the node's own (its SRV target names); the others are shared."""
    (body,) = _THANOS_ROUTE((name,), replicas)
    thanos = resource_from_bytes(ROUTE, "thanos", body, _thanos_needs(replicas))
    return ResourceSet.of(ROUTE, (thanos, *_shared_routes()))


def _encode_thanos_route(name: str, replicas: int) -> tuple[bytes]:
    return (_thanos_route(name, replicas).body,)


def _thanos_route(name: str, replicas: int) -> Resource:
    return by_host(
        "thanos",
        (
            Host(f"{name}-{i}", (sidecar_target(name, i),), f"thanos_{i}", streaming=True)
            for i in range(replicas)
        ),
    )


_THANOS_ROUTE = Stencil(_encode_thanos_route, values=1)


@lru_cache(maxsize=64)
def _thanos_needs(replicas: int) -> Refs:
    return _thanos_route("shape", replicas).refs


@lru_cache(maxsize=1)
def _shared_routes() -> tuple[Resource, ...]:
    return (
        _everything_to("prometheus"),
        _everything_to("alertmanager"),
        by_host("alert-relay", (Host("observability", ("*",), OBSERVABILITY_ALERTS),)),
    )


def _everything_to(target: str) -> Resource:
    """The observability side already stripped ``/prom/<c>``: the route is named for its target."""
    return by_host(target, (Host(target, ("*",), target),))

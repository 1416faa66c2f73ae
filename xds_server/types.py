"""Every xDS type Atlas serves, and the order in which ADS delivers them.

Make-before-break: secrets and clusters go out before the listeners and routes that use them
(and removals of secrets and clusters wait until nothing Envoy has accepted still uses them,
see ``xds_server.planner``). Endpoints are inline in clusters, so there is no EDS.
"""

from __future__ import annotations

__all__ = [
    "ADS_ORDER",
    "CLUSTER",
    "LISTENER",
    "PARTIAL_SOTW_TYPES",
    "ROUTE",
    "SECRET",
    "SHORT",
    "WILDCARD_TYPES",
]

_PREFIX = "type.googleapis.com/"
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"

ADS_ORDER: tuple[str, ...] = (SECRET, CLUSTER, LISTENER, ROUTE)
"""Push order when several types change at once."""

WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})
"""Envoy subscribes to all clusters and listeners; secrets and routes are asked for by name."""

PARTIAL_SOTW_TYPES = frozenset({ROUTE})
"""Types whose state-of-the-world responses carry only the resources the client does not hold
at their version (what delta sends), with the version of the whole set. The xDS protocol
allows it for every type but listeners and clusters, and the observability Envoy's four route
tables are about 6 MB at 10,000 clusters, of which a one-cluster change touches one or two.
Both of Envoy's muxes keep a route table a response leaves out: the default one calls only
the watches whose resources came; the unified one (``WatchMap``) gives the others an empty
update, which RDS ignores (``update_empty``). Secrets stay whole: SDS rejects that empty
update ("Unexpected SDS secrets length: 0"), which would NACK the response."""

SHORT = {SECRET: "secret", CLUSTER: "cluster", LISTENER: "listener", ROUTE: "route"}
"""Short names for logs, metrics and status."""

"""Every xDS type Atlas serves, and the order in which ADS delivers them.

Make-before-break: secrets and clusters go out before the listeners and routes that use them
(and removals of secrets and clusters wait until nothing Envoy has accepted still uses them,
see ``xds_server.planner``). Endpoints are inline in clusters, so there is no EDS.
"""

from __future__ import annotations

__all__ = ["ADS_ORDER", "CLUSTER", "LISTENER", "ROUTE", "SECRET", "SHORT", "WILDCARD_TYPES"]

_PREFIX = "type.googleapis.com/"
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"

ADS_ORDER: tuple[str, ...] = (SECRET, CLUSTER, LISTENER, ROUTE)
"""Push order when several types change at once."""

WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})
"""Envoy subscribes to all clusters and listeners; secrets and routes are asked for by name."""

SHORT = {SECRET: "secret", CLUSTER: "cluster", LISTENER: "listener", ROUTE: "route"}
"""Short names for logs, metrics and status."""

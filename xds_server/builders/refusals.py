"""What the observability Envoy answers a Thanos Query that dialed a name routing nowhere.

Without this, a removed cluster, a typo and a ``dnssrv+`` (instead of ``dnssrvnoa+``)
configuration all look the same to Thanos: UNIMPLEMENTED with an empty message. The
``thanos`` route table ends with a catch-all virtual host whose routes answer with Envoy's
local reply: for a gRPC request Envoy turns HTTP 503 into grpc-status UNAVAILABLE and the body
into grpc-message, so Thanos logs a sentence that says what happened.

Direct responses have no per-route statistics in Envoy, so each refusal route enables the
local rate-limit filter with an unlimited bucket, used only as a counter:
``atlas_refused_<reason>.http_local_rate_limit.ok`` counts that reason's refusals.
"""

from __future__ import annotations

from functools import lru_cache

from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import percent_pb2, token_bucket_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from atlas.model import SIDECARS_DOMAIN
from xds_server import wire

__all__ = [
    "COUNTER_FILTER",
    "KNOWN_LISTED",
    "NOT_A_TARGET",
    "UNKNOWN_TARGET",
    "counter_filter",
    "counter_stat",
    "no_alertmanager_entry",
    "refusal_entry",
]

COUNTER_FILTER = "envoy.filters.http.local_ratelimit"
UNKNOWN_TARGET = "unknown_target"
"""A name under ``sidecars.thanos.atlas`` that is no cluster replica (removed, typo)."""
NOT_A_TARGET = "not_a_target"
"""Any other ``:authority``: typically an IP address, because Thanos used ``dnssrv+``."""
KNOWN_LISTED = 8
"""At most this many known targets are named in the message; beyond, only their count."""

_STATUS = 503
"""Envoy maps 503 to grpc-status UNAVAILABLE for gRPC requests: Thanos retries the endpoint
later and keeps the others, as it would for a sidecar that is down."""
_VIRTUAL_HOSTS = wire.number(route_pb2.RouteConfiguration, "virtual_hosts")


def counter_stat(reason: str) -> str:
    """The stat prefix of a reason's counter (``…http_local_rate_limit.ok`` under it)."""
    return f"atlas_refused_{reason}"


@lru_cache(maxsize=1)
def counter_filter() -> hcm_pb2.HttpFilter:
    """The filter in the listener: without a bucket it does nothing unless a route enables it."""
    return hcm_pb2.HttpFilter(
        name=COUNTER_FILTER,
        typed_config=wire.packed(
            local_rate_limit_pb2.LocalRateLimit(stat_prefix="atlas_unlimited")
        ),
    )


@lru_cache(maxsize=2)
def _counter(reason: str) -> any_pb2.Any:
    """Per-route: enabled for every request, never enforced, a bucket that never runs dry."""
    everything = base_pb2.RuntimeFractionalPercent(
        default_value=percent_pb2.FractionalPercent(
            numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
        )
    )
    return wire.packed(
        local_rate_limit_pb2.LocalRateLimit(
            stat_prefix=counter_stat(reason),
            token_bucket=token_bucket_pb2.TokenBucket(
                max_tokens=1 << 30,
                tokens_per_fill=wrappers_pb2.UInt32Value(value=1 << 30),
                fill_interval=duration_pb2.Duration(seconds=1),
            ),
            filter_enabled=everything,
        )
    )


def _local_reply(status: int, text: str, *, unnamed: str) -> rc.DirectResponseAction:
    """``text`` with ``{authority}`` filled in by Envoy (``body_format``, which Envoy 1.40 has
    and 1.36 does not). An Envoy that does not know ``body_format`` ignores it and sends the static
    ``body``, the same text with ``unnamed`` in place of the quoted authority, so the reason
    still reaches Thanos; one that knows it sends the formatted text."""
    # ``%`` starts a format operator in Envoy's substitution strings: escape the plain text.
    formatted = text.replace("%", "%%").replace("{authority}", "%REQ(:AUTHORITY)%")
    return rc.DirectResponseAction(
        status=status,
        body=base_pb2.DataSource(inline_string=text.replace("'{authority}'", unnamed)),
        body_format=substitution_format_string_pb2.SubstitutionFormatString(
            text_format_source=base_pb2.DataSource(inline_string=formatted)
        ),
    )


def _refusal(reason: str, text: str, *, unnamed: str, suffix: str | None = None) -> rc.Route:
    match = rc.RouteMatch(prefix="/")
    if suffix is not None:
        match.headers.append(
            rc.HeaderMatcher(
                name=":authority",
                string_match=string_pb2.StringMatcher(suffix=suffix, ignore_case=True),
            )
        )
    return rc.Route(
        name=reason,
        match=match,
        direct_response=_local_reply(_STATUS, text, unnamed=unnamed),
        typed_per_filter_config={COUNTER_FILTER: _counter(reason)},
    )


def _known(listed: tuple[str, ...], replicas: int, clusters: int) -> str:
    if not replicas:
        return "no cluster is defined"
    if listed:
        return "known: " + ", ".join(listed)
    return (
        f"{replicas} replicas of {clusters} clusters; "
        f"dig SRV _grpc._tcp.{SIDECARS_DOMAIN}. lists them"
    )


@lru_cache(maxsize=64)
def refusal_entry(listed: tuple[str, ...], replicas: int, clusters: int) -> bytes:
    """The catch-all virtual host, encoded as a ``virtual_hosts`` entry of a route table.

    ``listed`` names every known replica (``east-0``) when there are at most ``KNOWN_LISTED``
    of them, and is empty otherwise; ``replicas`` and ``clusters`` are the totals.
    """
    known = _known(listed, replicas, clusters)
    vhost = rc.VirtualHost(
        name="refused",
        domains=["*"],
        routes=[
            _refusal(
                UNKNOWN_TARGET,
                f"atlas: no cluster/replica '{{authority}}' ({known})",
                unnamed="by the name dialed",
                suffix="." + SIDECARS_DOMAIN,
            ),
            _refusal(
                NOT_A_TARGET,
                "atlas: ':authority' '{authority}' is not a sidecar name: Thanos Query must dial "
                "the SRV target names, with "
                f"--endpoint=dnssrvnoa+_grpc._tcp.{SIDECARS_DOMAIN}. (dnssrv+ dials IP "
                "addresses, which name no cluster)",
                unnamed="dialed",
            ),
        ],
    )
    return wire.delimited(_VIRTUAL_HOSTS, vhost.SerializeToString(deterministic=True))


@lru_cache(maxsize=64)
def no_alertmanager_entry(replicas: int) -> bytes:
    """The alert intake's catch-all virtual host: a Host naming no Alertmanager replica gets
    a 404 that says which Hosts exist, not some other replica. Being a route, it also lets the
    route table's allow-list decide first: a peer that is no member gets 403 whatever it asks."""
    hosts = f"alertmanager-0 to alertmanager-{replicas - 1}" if replicas else "none is known"
    vhost = rc.VirtualHost(
        name="no-alertmanager",
        domains=["*"],
        routes=[
            rc.Route(
                name="no-alertmanager",
                match=rc.RouteMatch(prefix="/"),
                direct_response=_local_reply(
                    404,
                    f"atlas: no observability Alertmanager for Host '{{authority}}' ({hosts})\n",
                    unnamed="in the request",
                ),
            )
        ],
    )
    return wire.delimited(_VIRTUAL_HOSTS, vhost.SerializeToString(deterministic=True))

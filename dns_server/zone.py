"""The zone ``atlas.`` as immutable data: every record, TTL and name rule lives here.

* ``_grpc._tcp.sidecars.thanos.atlas.``           SRV for every cluster and replica
* ``_grpc._tcp.<cluster>.sidecars.thanos.atlas.`` SRV for one cluster's replicas
* ``_grpc._tcp.<group>.groups.thanos.atlas.``     SRV for the clusters of one group
* ``<cluster>-<i>.sidecars.thanos.atlas.``        A/AAAA: the observability Envoy
* apex SOA and NS; every ancestor of a name exists (NODATA, never NXDOMAIN).

goatlas.io/atlas compatibility: ``_<name>._tcp.…`` answers exactly like ``_grpc._tcp.…`` (for
every cluster, one cluster, or a group) when ``<name>`` denotes the Thanos StoreAPI: ``thanos``
always, and every cluster Service port name whose port or targetPort is 10901 (``grpc`` in
its docs). Other port names (``prometheus``, ``alertmanager``, ``http``…) are not published:
the UIs are reached by path on the observability Envoy, which an SRV record cannot express.

A zone is built from a Topology by a pure function and replaced whole on every change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from atlas.config import DNSSettings, ObservabilityPorts
from atlas.model import (
    SIDECARS_DOMAIN,
    SRV_SERVICE,
    SRV_SERVICE_ALIASES,
    ZONE,
    Topology,
    sidecar_target,
)

__all__ = [
    "AAAA",
    "ALL_SIDECARS",
    "GROUPS",
    "NS",
    "SIDECARS",
    "SOA",
    "SRV",
    "A",
    "Record",
    "Zone",
    "build_zone",
]

SRV_PORT = ObservabilityPorts().thanos
"""The port every SRV record names: the observability Envoy's StoreAPI listener."""

SIDECARS = SIDECARS_DOMAIN + "."
GROUPS = "groups.thanos." + ZONE
SRV_PREFIX = f"_{SRV_SERVICE}._tcp."
ALL_SIDECARS = SRV_PREFIX + SIDECARS
NAMESERVER = "ns." + ZONE

A, NS, SOA, AAAA, SRV = 1, 2, 6, 28, 33
SRV_PRIORITY, SRV_WEIGHT = 10, 100
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 86400


@dataclass(frozen=True, order=True)
class Record:
    """One resource record; ``data`` is typed per ``rtype`` (see the constructors below)."""

    name: str
    rtype: int
    ttl: int
    data: tuple[str | int, ...]


@dataclass(frozen=True)
class Zone:
    origin: str
    serial: int
    records: Mapping[str, Mapping[int, tuple[Record, ...]]]
    """Lower-case absolute name → record type → records."""
    names: frozenset[str] = field(default_factory=frozenset)
    """Every name that exists, including empty non-terminals."""
    soa: Record | None = None
    ttl: int = 30
    aliases: frozenset[str] = frozenset()
    """Service labels answered like ``_grpc`` (``_thanos``, …): see the module docstring."""

    def contains(self, name: str) -> bool:
        return name == self.origin or name.endswith("." + self.origin)

    def canonical(self, name: str) -> str | None:
        """``_grpc._tcp.<rest>`` for an alias name ``_<alias>._tcp.<rest>`` that exists."""
        service, _, rest = name.partition(".")
        if not service.startswith("_") or service[1:] not in self.aliases:
            return None
        if not rest.startswith("_tcp."):
            return None
        canonical = f"_{SRV_SERVICE}.{rest}"
        return canonical if canonical in self.names else None

    @property
    def record_count(self) -> int:
        return sum(len(rs) for types in self.records.values() for rs in types.values())


def _abs(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _address_records(name: str, addresses: Iterable[str], ttl: int) -> list[Record]:
    records = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        records.append(Record(name, A if ip.version == 4 else AAAA, ttl, (str(ip),)))
    return records


def build_zone(
    topology: Topology,
    *,
    addresses: Iterable[str],
    serial: int,
    settings: DNSSettings | None = None,
    port: int = SRV_PORT,
) -> Zone:
    """The whole zone for ``topology``; ``addresses`` are the observability Envoy's IPs."""
    settings = settings or DNSSettings()
    ttl = settings.ttl
    addresses = sorted(set(addresses))
    soa = Record(
        ZONE,
        SOA,
        ttl,
        (
            NAMESERVER,
            f"hostmaster.{ZONE}",
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            settings.negative_ttl,
        ),
    )
    rrs: list[Record] = [soa, Record(ZONE, NS, ttl, (NAMESERVER,))]
    for c in topology.clusters:
        for i in range(c.replicas):
            target = _abs(sidecar_target(c.name, i))
            srv = (SRV_PRIORITY, SRV_WEIGHT, port, target)
            rrs.append(Record(ALL_SIDECARS, SRV, ttl, srv))
            rrs.append(Record(f"{SRV_PREFIX}{c.name}.{SIDECARS}", SRV, ttl, srv))
            if c.group:
                rrs.append(Record(f"{SRV_PREFIX}{c.group}.{GROUPS}", SRV, ttl, srv))
            rrs += _address_records(target, addresses, ttl)
    table: dict[str, dict[int, list[Record]]] = {}
    for r in rrs:
        table.setdefault(r.name, {}).setdefault(r.rtype, []).append(r)
    # The well-known names always exist (NODATA when empty): with no clusters yet, Thanos
    # must see "no records", which is true, not NXDOMAIN, which reads as misconfiguration.
    names: set[str] = set()
    for name in (*table, ALL_SIDECARS, GROUPS, NAMESERVER):
        while True:
            names.add(name)
            if name == ZONE:
                break
            name = name.split(".", 1)[1]
    return Zone(
        origin=ZONE,
        serial=serial,
        records=MappingProxyType(
            {
                n: MappingProxyType({t: tuple(sorted(v)) for t, v in types.items()})
                for n, types in table.items()
            }
        ),
        names=frozenset(names),
        soa=soa,
        ttl=ttl,
        aliases=frozenset(
            {*SRV_SERVICE_ALIASES, *(a for c in topology.clusters for a in c.srv_services)}
            - {SRV_SERVICE}
        ),
    )

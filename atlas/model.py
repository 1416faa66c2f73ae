"""The slim, immutable model every builder reads, and the label/annotation keys that feed it.

Watchers cut Kubernetes objects down to these frozen dataclasses (see ``atlas.manifests``);
builders never see a raw object. A ``Topology`` is sorted on construction, so two topologies
with the same content are equal and hash the same whatever order the objects arrived in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from types import MappingProxyType

__all__ = [
    "ALERTMANAGER_POD_SELECTOR_KEY",
    "ANN_ALERTMANAGER_PORT",
    "ANN_ALERTMANAGER_SERVICE",
    "ANN_CA_ROTATE",
    "ANN_ENVOY_ADDRESS",
    "ANN_PROMETHEUS_PORT",
    "ANN_PROMETHEUS_SERVICE",
    "ANN_THANOS_PORT",
    "ANN_THANOS_REPLICA_SERVICE",
    "ANN_THANOS_SERVICE",
    "DEFAULT_ALERTMANAGER",
    "DEFAULT_PROMETHEUS",
    "DEFAULT_THANOS",
    "DEFAULT_THANOS_REPLICA_TEMPLATE",
    "KNOWN_ANNOTATIONS",
    "KNOWN_LABELS",
    "LABEL_CLUSTER",
    "LABEL_ENVOY_VALUES",
    "LABEL_GROUP",
    "LABEL_INSTANCE",
    "LABEL_MANAGED_BY",
    "LABEL_REPLICAS",
    "LAST_GOOD_KEY",
    "MAX_REPLICAS",
    "PREFIX",
    "SIDECARS_DOMAIN",
    "SRV_SERVICE",
    "SRV_SERVICE_ALIASES",
    "STOREAPI_PORT",
    "ZONE",
    "Alertmanager",
    "DownstreamCluster",
    "Topology",
    "Upstream",
    "sidecar_target",
]

# Labels (goatlas.io/atlas compatible).
LABEL_CLUSTER = "goatlas.io/cluster"
LABEL_REPLICAS = "goatlas.io/replicas"
LABEL_GROUP = "goatlas.io/group"

# Annotations (goatlas.io/atlas compatible, plus the two Atlas adds).
ANN_ENVOY_ADDRESS = "goatlas.io/envoy-address"
ANN_THANOS_SERVICE = "goatlas.io/thanos-service"
ANN_THANOS_PORT = "goatlas.io/thanos-service-port"
ANN_THANOS_REPLICA_SERVICE = "goatlas.io/thanos-replica-service"
ANN_PROMETHEUS_SERVICE = "goatlas.io/prometheus-service"
ANN_PROMETHEUS_PORT = "goatlas.io/prometheus-service-port"
ANN_ALERTMANAGER_SERVICE = "goatlas.io/alertmanager-service"
ANN_ALERTMANAGER_PORT = "goatlas.io/alertmanager-service-port"

# Written by Atlas on the objects it manages in Kubernetes.
ANN_CA_ROTATE = "goatlas.io/ca-rotate"
"""On the CA Secret: asks the leader to rotate the CA (goatlas.io/atlas compatible)."""
LABEL_MANAGED_BY = "goatlas.io/managed-by"
LABEL_ENVOY_VALUES = "goatlas.io/envoy-values"
"""Marks the per-cluster Helm values Secrets, so stale ones can be found and removed."""
LABEL_INSTANCE = "goatlas.io/instance"
"""On every values Secret Atlas writes: the instance that owns it (``atlas.instance``), so that
removing stale ones never removes another installation's."""

PREFIX = "goatlas.io/"
"""Every label and annotation of Atlas's (and goatlas.io/atlas's) starts with it."""
KNOWN_LABELS = frozenset(
    {LABEL_CLUSTER, LABEL_REPLICAS, LABEL_GROUP, LABEL_MANAGED_BY, LABEL_ENVOY_VALUES}
)
KNOWN_ANNOTATIONS = frozenset(
    {
        ANN_ENVOY_ADDRESS,
        ANN_THANOS_SERVICE,
        ANN_THANOS_PORT,
        ANN_THANOS_REPLICA_SERVICE,
        ANN_PROMETHEUS_SERVICE,
        ANN_PROMETHEUS_PORT,
        ANN_ALERTMANAGER_SERVICE,
        ANN_ALERTMANAGER_PORT,
        ANN_CA_ROTATE,
    }
)
"""Any other ``goatlas.io/`` key on a cluster Service is a mistake worth a warning."""

LAST_GOOD_KEY = "last-good.json"
"""Kubernetes: the key of the Secret (``InstanceNames.last_good``) in which the leader keeps
every cluster's last good definition (``watchers.memory``), so that a replica that starts
while a Service is invalid serves what the others did."""

ALERTMANAGER_POD_SELECTOR_KEY = "statefulset.kubernetes.io/pod-name"
"""An observability Alertmanager Service selects exactly one pod through this key."""

MAX_REPLICAS = 64

ZONE = "atlas."
SRV_SERVICE = "grpc"
"""``_grpc._tcp``: the service label of the SRV names this project documents."""
SRV_SERVICE_ALIASES = ("thanos",)
"""Always answered like ``_grpc._tcp``: goatlas.io/atlas's ``cluster add`` named the StoreAPI
port ``thanos`` and its demo ran Thanos Query with ``dnssrvnoa+_thanos._tcp...``."""
STOREAPI_PORT = 10901
"""The Thanos StoreAPI port: a cluster Service port with this port or targetPort carries it."""
SIDECARS_DOMAIN = "sidecars.thanos.atlas"
"""Parent of every SRV target. The DNS zone answers these names and the observability Envoy
routes on them as ``:authority``, so both faces take them from ``sidecar_target``."""


def replica_sidecar(thanos: Upstream, template: str, replicas: int, index: int) -> Upstream:
    """The sidecar behind replica ``index``: the plain thanos Service for a single replica,
    else the per-replica Service the template names (see ``DownstreamCluster.thanos_replica``).
    """
    if replicas == 1:
        return thanos
    return Upstream(template.replace("{i}", str(index)), thanos.port)


def sidecar_target(cluster: str, replica: int) -> str:
    """``<cluster>-<i>.sidecars.thanos.atlas``: one name per sidecar replica."""
    return f"{cluster}-{replica}.{SIDECARS_DOMAIN}"


@dataclass(frozen=True, order=True)
class Upstream:
    """A host and port on the far side of an Envoy."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


DEFAULT_THANOS = Upstream("prometheus-operated.monitoring.svc.cluster.local", 10901)
DEFAULT_PROMETHEUS = Upstream("prometheus-operated.monitoring.svc.cluster.local", 9090)
DEFAULT_ALERTMANAGER = Upstream("alertmanager-operated.monitoring.svc.cluster.local", 9093)
DEFAULT_THANOS_REPLICA_TEMPLATE = (
    "kube-prometheus-stack-prometheus-{i}.monitoring.svc.cluster.local"
)
"""kube-prometheus-stack's ``servicePerReplica`` Services, one per Prometheus replica."""


@dataclass(frozen=True, order=True)
class DownstreamCluster:
    """One downstream cluster: the Service labelled ``goatlas.io/cluster: "true"``."""

    name: str
    envoy_address: str
    """Where that cluster's Envoy is reachable: an IP, or a DNS name from the annotation."""
    replicas: int = 1
    thanos: Upstream = DEFAULT_THANOS
    thanos_replica_template: str = DEFAULT_THANOS_REPLICA_TEMPLATE
    prometheus: Upstream = DEFAULT_PROMETHEUS
    alertmanager: Upstream = DEFAULT_ALERTMANAGER
    group: str | None = None
    srv_services: tuple[str, ...] = ()
    """Names of the Service's TCP ports that carry the StoreAPI (port or targetPort 10901),
    answered in DNS as ``_<name>._tcp`` like ``_grpc._tcp`` (goatlas.io/atlas published
    ``_<port-name>._<protocol>.sidecars.thanos.atlas.``; see ``SRV_SERVICE_ALIASES``)."""

    def __hash__(self) -> int:
        # Memoized builders hash a cluster several times per build; compute it once.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(
                (
                    self.name,
                    self.envoy_address,
                    self.replicas,
                    self.thanos,
                    self.thanos_replica_template,
                    self.prometheus,
                    self.alertmanager,
                    self.group,
                    self.srv_services,
                )
            )
            object.__setattr__(self, "_hash", cached)
        return cached

    def thanos_replica(self, index: int) -> Upstream:
        """The sidecar of replica ``index``; with one replica the plain thanos Service.

        Thanos deduplicates HA pairs only when each SRV target reaches one fixed replica, so
        with several replicas each gets its own per-replica Service, never the shared one.
        """
        if not 0 <= index < self.replicas:
            raise IndexError(f"cluster {self.name} has no replica {index}")
        return replica_sidecar(self.thanos, self.thanos_replica_template, self.replicas, index)


@dataclass(frozen=True, order=True)
class Alertmanager:
    """One observability Alertmanager replica, reached through its single-pod Service."""

    name: str
    """The Service name."""
    replica: int
    """Index taken from the selected pod's ordinal."""
    address: str
    port: int


def _cluster_name(c: DownstreamCluster) -> str:
    return c.name


@dataclass(frozen=True)
class Topology:
    """Everything the builders need, validated and sorted."""

    clusters: tuple[DownstreamCluster, ...] = ()
    alertmanagers: tuple[Alertmanager, ...] = ()
    observability_addresses: tuple[str, ...] = field(default=())
    """Addresses of the observability Envoy for DNS A/AAAA (e.g. its Service's ClusterIP)."""
    held: tuple[str, ...] = ()
    """Clusters whose Service exists but is invalid, with no earlier good definition known
    (a replica that started meanwhile): not routed, but still members, so their Envoys keep
    their credentials (an invalid manifest is never a removal)."""

    def __post_init__(self) -> None:
        # By name (unique within a topology): string comparisons, not dataclass ones.
        object.__setattr__(self, "clusters", tuple(sorted(self.clusters, key=_cluster_name)))
        object.__setattr__(self, "alertmanagers", tuple(sorted(self.alertmanagers)))
        object.__setattr__(
            self, "observability_addresses", tuple(sorted(set(self.observability_addresses)))
        )
        object.__setattr__(self, "held", tuple(sorted(set(self.held))))

    def cluster(self, name: str) -> DownstreamCluster | None:
        return self.by_name.get(name)

    @property
    def alertmanager_replicas(self) -> int:
        """How many Alertmanager replicas a downstream's alert relay must offer (one more
        than the highest ordinal, so that ``alertmanager-<i>`` exists for every replica)."""
        return max((a.replica for a in self.alertmanagers), default=-1) + 1

    @cached_property
    def cluster_names(self) -> tuple[str, ...]:
        """In name order, like ``clusters`` (made once per topology, with the loop in C)."""
        return tuple(map(attrgetter("name"), self.clusters))

    @cached_property
    def by_name(self) -> Mapping[str, DownstreamCluster]:
        """The clusters by name (made once per topology, when first asked for)."""
        return MappingProxyType(dict(zip(self.cluster_names, self.clusters, strict=True)))

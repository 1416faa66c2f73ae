"""What should hold: the operator's intent, and what Atlas must serve of it.

The model is a plain value: each action returns the next one, and the checker compares what
the network does with the model in force at that moment. A cluster has what its manifest
says (``Wanted``) and what Atlas must serve (``served``): they differ only while its manifest
is invalid (the last good definition stays in force) or while a duplicate is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

CLUSTERS = ("east", "west", "north")
"""Every cluster a run may add; each has its index (1, 2, 3) in the loopback addresses."""
MAX_REPLICAS = 3
GROUPS = ("a", "b")

ALL_NAME = "_grpc._tcp.sidecars.thanos.atlas."


def cluster_name(cluster: str) -> str:
    return f"_grpc._tcp.{cluster}.sidecars.thanos.atlas."


def group_name(group: str) -> str:
    return f"_grpc._tcp.{group}.groups.thanos.atlas."


def srv_names() -> tuple[str, ...]:
    """Every SRV name the prober resolves."""
    return (ALL_NAME, *map(cluster_name, CLUSTERS), *map(group_name, GROUPS))


def all_targets() -> tuple[str, ...]:
    """Every target the prober calls: each replica that may ever exist."""
    return tuple(f"{c}-{i}" for c in CLUSTERS for i in range(MAX_REPLICAS))


@dataclass(frozen=True)
class Wanted:
    """One cluster's definition, as the operator writes it in its manifest."""

    replicas: int = 1
    alternate_address: bool = False
    """The second of its two Envoy addresses."""
    by_annotation: bool = False
    """The address in ``goatlas.io/envoy-address`` rather than ``spec.externalIPs``."""
    group: str | None = None


@dataclass(frozen=True)
class Cluster:
    served: Wanted
    broken: bool = False
    """Its manifest is invalid now: ``served`` (the last good definition) stays."""
    duplicate: bool = False
    """A second manifest defines it too, differently: rejected, ``served`` stays."""


@dataclass(frozen=True)
class Model:
    clusters: dict[str, Cluster] = field(default_factory=dict)

    def with_cluster(self, name: str, cluster: Cluster | None) -> Model:
        clusters = dict(self.clusters)
        if cluster is None:
            clusters.pop(name, None)
        else:
            clusters[name] = cluster
        return Model(clusters)

    def change(self, name: str, **wanted: object) -> Model:
        current = self.clusters[name]
        served = replace(current.served, **wanted)  # type: ignore[arg-type]
        return self.with_cluster(name, replace(current, served=served))

    def targets(self) -> set[str]:
        """Every replica Atlas must route: ``<cluster>-<i>``."""
        return {f"{c}-{i}" for c, s in self.clusters.items() for i in range(s.served.replicas)}

    def srv(self, name: str) -> set[str]:
        """The targets an SRV name must list."""
        if name == ALL_NAME:
            return self.targets()
        for c in CLUSTERS:
            if name == cluster_name(c):
                return {t for t in self.targets() if t.rsplit("-", 1)[0] == c}
        for g in GROUPS:
            if name == group_name(g):
                members = {c for c, s in self.clusters.items() if s.served.group == g}
                return {t for t in self.targets() if t.rsplit("-", 1)[0] in members}
        raise ValueError(name)

    def rejected(self) -> int:
        """Objects Atlas must report as rejected."""
        return sum(int(c.broken) + int(c.duplicate) for c in self.clusters.values())

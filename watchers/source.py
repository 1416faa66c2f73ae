"""What every source (directory, Kubernetes) hands to the rest of Atlas.

A source publishes ``SourceState`` values: the validated ``Topology``, the problems found in
the objects it read, and whether it has completed a first full read. Consumers act on the
newest state only, so a source may publish as often as it likes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from atlas.errors import AtlasError, DuplicateCluster
from atlas.manifests import ParseResult
from atlas.model import DownstreamCluster, Topology
from watchers.memory import Memory

__all__ = ["Applied", "LastGood", "Publish", "Source", "SourceState"]


@dataclass(frozen=True)
class SourceState:
    topology: Topology
    errors: tuple[AtlasError, ...] = ()
    synced: bool = False
    """True once the source has read everything once: before that, nothing is authoritative."""
    warnings: tuple[str, ...] = ()
    """Objects accepted with a remark (an unknown ``goatlas.io/`` key): logged, in status."""

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(str(e) for e in self.errors)

    def same_as(self, other: SourceState | None) -> bool:
        return (
            other is not None
            and self.topology == other.topology
            and self.synced == other.synced
            and self.messages == other.messages
            and self.warnings == other.warnings
        )


Publish = Callable[[SourceState], None]


class Source(Protocol):
    """Runs forever, calling ``publish`` with each new state."""

    async def run(self, publish: Publish) -> None: ...

    @property
    def version(self) -> str:
        """What the source has read so far, comparable between replicas (status only)."""
        ...


class LastGood:
    """Keeps serving a cluster's last valid definition while its object is invalid, and the
    definition in force when a second one for the same cluster appears.

    An operator's typo in ``east``'s Service must not take ``east`` off the network: the
    error is reported (saying that the last good definition stays) and the previous
    definition stays until the object is fixed or deleted. A stray copy of ``east`` must not
    take it over either: ``in_force`` tells the parser where the served definition came from.
    With a ``memory``, what was in force survives a restart. Without one (or for a cluster
    never valid since), an invalid cluster object is *held*: not routed, but never taken for
    a removal, which would revoke its credentials.

    It also hands back the previous object for a cluster that parsed the same as before, so
    an unchanged cluster is the *same* object from one state to the next. The snapshot
    builders tell unchanged clusters by identity, which keeps a one-cluster change at 10,000
    clusters from comparing 10,000 clusters field by field.
    """

    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory
        self._good: dict[str, DownstreamCluster] = {}
        self.in_force: Mapping[str, str] = {}
        """Per cluster, the origin of the definition served (``parse_services(in_force=)``)."""
        self._committed = False
        self.restore()

    def restore(self) -> None:
        """Start from the memory, unless something was remembered since (a source whose
        memory can only be read once it is synced calls it then)."""
        if self.memory is not None and not self._committed:
            self._good, self.in_force = self.memory.load()

    def apply(self, result: ParseResult, *, commit: bool = True) -> Applied:
        """The clusters to serve, the held ones, and the result's errors saying which.

        ``commit`` False (a source not yet synced, whose read is partial): remember nothing,
        lest a cluster not read yet be forgotten, and the memory with it."""
        clusters: dict[str, DownstreamCluster] = {}
        for c in result.clusters:
            before = self._good.get(c.name)
            clusters[c.name] = before if before is not None and before == c else c
        in_force = dict(result.origins)
        errors: list[AtlasError] = []
        held: set[str] = set()
        for err in result.errors:
            name = err.obj.rpartition("/")[2]
            kept = name in self._good and name not in result.origins
            if kept:
                clusters[name] = self._good[name]
                in_force[name] = self.in_force.get(name, "")
                if not isinstance(err, DuplicateCluster):
                    err = err.but(keeping=True)
            elif err.cluster and err.cluster not in result.origins:
                held.add(err.cluster)
                err = err.but(held=True)
            errors.append(err)
        if commit:
            if clusters != self._good and self.memory is not None:
                self.memory.save(clusters, in_force)
            self._good = clusters
            self.in_force = in_force
            self._committed = True
        return Applied(tuple(sorted(clusters.values())), tuple(errors), tuple(sorted(held)))


@dataclass(frozen=True)
class Applied:
    clusters: tuple[DownstreamCluster, ...]
    errors: tuple[AtlasError, ...]
    held: tuple[str, ...]

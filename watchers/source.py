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

__all__ = ["LastGood", "Publish", "Source", "SourceState"]


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

    It also hands back the previous object for a cluster that parsed the same as before, so
    an unchanged cluster is the *same* object from one state to the next. The snapshot
    builders tell unchanged clusters by identity, which keeps a one-cluster change at 10,000
    clusters from comparing 10,000 clusters field by field.
    """

    def __init__(self) -> None:
        self._good: dict[str, DownstreamCluster] = {}
        self.in_force: Mapping[str, str] = {}
        """Per cluster, the origin of the definition served (``parse_services(in_force=)``)."""

    def apply(
        self, result: ParseResult
    ) -> tuple[tuple[DownstreamCluster, ...], tuple[AtlasError, ...]]:
        """The clusters to serve, and the result's errors, those of a kept cluster saying so."""
        clusters: dict[str, DownstreamCluster] = {}
        for c in result.clusters:
            before = self._good.get(c.name)
            clusters[c.name] = before if before is not None and before == c else c
        in_force = dict(result.origins)
        errors: list[AtlasError] = []
        for err in result.errors:
            name = err.obj.rpartition("/")[2]
            kept = name in self._good and name not in result.origins
            if kept:
                clusters[name] = self._good[name]
                in_force[name] = self.in_force.get(name, "")
                if not isinstance(err, DuplicateCluster):
                    err = err.but(keeping=True)
            errors.append(err)
        self._good = clusters
        self.in_force = in_force
        return tuple(sorted(clusters.values())), tuple(errors)

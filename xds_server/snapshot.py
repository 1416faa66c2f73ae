"""A node's complete configuration, checked for consistency before anyone can serve it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from atlas.errors import SnapshotInconsistent
from xds_server.resources import Resource, content_version
from xds_server.types import ADS_ORDER, SHORT

__all__ = ["Snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """Resources of one node by type and name, and a content version per type."""

    node: str
    resources: Mapping[str, Mapping[str, Resource]]
    versions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, node: str, resources: Iterable[Resource]) -> Snapshot:
        """Group, version and check; raises SnapshotInconsistent naming the resource."""
        by_type: dict[str, dict[str, Resource]] = {t: {} for t in ADS_ORDER}
        for r in resources:
            if r.type_url not in by_type:
                raise ValueError(f"unknown type {r.type_url}")
            if r.name in by_type[r.type_url]:
                raise SnapshotInconsistent(
                    node, f"{SHORT[r.type_url]} {r.name}", "(duplicate name)"
                )
            by_type[r.type_url][r.name] = r
        frozen = {t: MappingProxyType(rs) for t, rs in by_type.items()}
        snapshot = cls(
            node=node,
            resources=MappingProxyType(frozen),
            versions=MappingProxyType(
                {t: content_version(rs.values()) for t, rs in frozen.items()}
            ),
        )
        snapshot.check()
        return snapshot

    def check(self) -> None:
        """Every reference (route → cluster, listener → route/secret, cluster → secret) exists."""
        by_type = self.resources
        for type_url in ADS_ORDER:
            for r in by_type[type_url].values():
                for ref_type, ref_name in r.refs:
                    if ref_name not in by_type[ref_type]:
                        # Name the first missing reference in a stable order (rare path).
                        missing = min((t, n) for t, n in r.refs if n not in by_type[t])
                        raise SnapshotInconsistent(
                            self.node,
                            f"{SHORT[type_url]} {r.name}",
                            f"{SHORT[missing[0]]} {missing[1]}",
                        )

    def of(self, type_url: str) -> Mapping[str, Resource]:
        return self.resources.get(type_url, {})

    def __eq__(self, other: object) -> bool:
        if self is other:  # memoized builders hand back the same snapshot when nothing changed
            return True
        return (
            isinstance(other, Snapshot)
            and self.node == other.node
            and dict(self.versions) == dict(other.versions)
        )

    def __hash__(self) -> int:
        return hash((self.node, tuple(sorted(self.versions.items()))))

"""A node's complete configuration, checked for consistency before anyone can serve it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from atlas.errors import SnapshotInconsistent
from xds_server.resource_set import DuplicateName, ResourceSet
from xds_server.resources import Resource
from xds_server.types import ADS_ORDER, SHORT

__all__ = ["Snapshot"]

_EMPTY: dict[str, ResourceSet] = {t: ResourceSet.of(t, ()) for t in ADS_ORDER}


class Snapshot:
    """One ``ResourceSet`` per type, and their versions. Immutable by convention."""

    __slots__ = ("node", "sets", "versions")

    node: str
    sets: Mapping[str, ResourceSet]
    versions: Mapping[str, str]

    def __init__(self, node: str, sets: Mapping[str, ResourceSet]) -> None:
        self.node = node
        self.sets = sets
        self.versions = MappingProxyType({t: s.version for t, s in sets.items()})

    @classmethod
    def build(cls, node: str, resources: Iterable[Resource]) -> Snapshot:
        """Group, version and check; raises SnapshotInconsistent naming the resource."""
        by_type: dict[str, list[Resource]] = {t: [] for t in ADS_ORDER}
        for r in resources:
            if r.type_url not in by_type:
                raise ValueError(f"unknown type {r.type_url}")
            by_type[r.type_url].append(r)
        sets = {}
        for type_url, members in by_type.items():
            try:
                sets[type_url] = ResourceSet.of(type_url, members)
            except DuplicateName as dup:
                raise SnapshotInconsistent(
                    node, f"{SHORT[type_url]} {dup.name}", "(duplicate name)"
                ) from None
        return cls.assemble(node, sets)

    @classmethod
    def assemble(
        cls, node: str, sets: Mapping[str, ResourceSet], since: Snapshot | None = None
    ) -> Snapshot:
        """From sets built (and perhaps shared) elsewhere; missing types are empty.
        ``since``: a checked snapshot these sets were patched from (see ``check``)."""
        snapshot = cls(node, MappingProxyType({t: sets.get(t, _EMPTY[t]) for t in ADS_ORDER}))
        snapshot.check(since)
        return snapshot

    def check(self, since: Snapshot | None = None) -> None:
        """Every reference (route → cluster, listener → route/secret, cluster → secret) exists.

        One subset test per pair of types, on the sets' unions of references; only when one
        fails are the members searched, to name the first broken reference. A pair whose
        references and names are both those of ``since`` (already checked) is not tested
        again: the observability node's route tables name 300,000 upstreams at 100,000
        clusters, and a one-cluster change keeps both sides.
        """
        for type_url, members in self.sets.items():
            for ref_type, names in members.needs.items():
                target = self.sets[ref_type]
                if since is not None and _unchanged(since, type_url, names, target):
                    continue
                have = target.items.keys()
                if not have >= names:
                    self._name_broken(type_url, ref_type, have)

    def _name_broken(self, type_url: str, ref_type: str, have: Iterable[str]) -> None:
        present = set(have)
        for name in sorted(self.sets[type_url].items):
            r = self.sets[type_url].items[name]
            missing = sorted(r.refs.get(ref_type, frozenset()) - present)
            if missing:
                raise SnapshotInconsistent(
                    self.node, f"{SHORT[type_url]} {r.name}", f"{SHORT[ref_type]} {missing[0]}"
                )

    def of(self, type_url: str) -> Mapping[str, Resource]:
        members = self.sets.get(type_url)
        return members.items if members is not None else {}

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


def _unchanged(since: Snapshot, type_url: str, needs: frozenset[str], target: ResourceSet) -> bool:
    """Whether ``since`` had the very same references from ``type_url`` into a set with the
    same names as ``target``."""
    before = since.sets[type_url].needs.get(target.type_url)
    return before is needs and since.sets[target.type_url].names_id == target.names_id

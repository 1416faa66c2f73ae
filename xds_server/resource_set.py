"""All resources of one type for one node, with their version and what they depend on.

A ``ResourceSet`` is immutable and may be shared: a thousand downstream nodes with the same
listeners hold the same listener set, versioned and checked once. The observability node's
cluster set (three upstreams per downstream cluster) is never rebuilt for a one-cluster
change: ``patch`` copies the map, swaps the changed members and adjusts the version sum.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from types import MappingProxyType

from xds_server.resources import NO_REFS, Refs, Resource, total_version

__all__ = ["DuplicateName", "ResourceSet"]


class DuplicateName(ValueError):
    """Two resources of one type with the same name; the snapshot names the node."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _union_needs(resources: Iterable[Resource]) -> Refs:
    members = [r.refs for r in resources]
    if all(refs is NO_REFS for refs in members):
        return NO_REFS
    if len(members) > _SMALL:
        return _union_of(members)
    key = tuple(map(id, members))
    known = _UNIONS.get(key)
    # Identity, not equality: the entry holds its refs objects, so their ids stay theirs.
    if known is not None and all(a is b for a, b in zip(known[0], members, strict=True)):
        return known[1]
    union = _union_of(members)
    if len(_UNIONS) >= _UNIONS_KEPT:
        _UNIONS.pop(next(iter(_UNIONS)), None)
    _UNIONS[key] = (tuple(members), union)
    return union


def _union_of(members: list[Refs]) -> Refs:
    groups: dict[str, list[frozenset[str]]] = {}
    for refs in members:
        for type_url, names in refs.items():
            groups.setdefault(type_url, []).append(names)
    if not groups:
        return NO_REFS
    return MappingProxyType({t: frozenset().union(*names) for t, names in groups.items()})


_UNIONS: dict[tuple[int, ...], tuple[tuple[Refs, ...], Refs]] = {}
"""Recent unions by the identity of their members' refs. Builders share refs objects between
resources of one shape (every node's ``thanos`` route of two replicas needs the same
clusters), so the union for 10,000 nodes' route sets is computed once, not 10,000 times."""
_UNIONS_KEPT = 64
_SMALL = 16
"""Only sets this small are remembered: a node's sets, not the observability node's 30,000."""


_NAMES_IDS = itertools.count()


class ResourceSet:
    """Immutable by convention (slotted, not a dataclass: a snapshot of 10,000 nodes makes
    20,000 of them, and construction cost matters)."""

    __slots__ = ("items", "names_id", "needs", "total", "type_url", "version")

    type_url: str
    items: MappingProxyType[str, Resource]
    total: int
    """Sum of the members' digests: the version, before mixing."""
    needs: Refs
    """Union of the members' references, type → names, for the snapshot's consistency check."""
    version: str
    names_id: int
    """Equal for two sets only if they hold the same names (``patch`` keeps it when no name
    comes or goes): a snapshot check can skip a pair of sets it already checked."""

    def __init__(
        self,
        type_url: str,
        items: MappingProxyType[str, Resource],
        total: int,
        needs: Refs,
        names_id: int | None = None,
    ) -> None:
        self.type_url = type_url
        self.items = items
        self.total = total
        self.needs = needs
        self.version = total_version(total)
        self.names_id = next(_NAMES_IDS) if names_id is None else names_id

    @classmethod
    def of(cls, type_url: str, resources: Iterable[Resource]) -> ResourceSet:
        """Raises ``DuplicateName`` when two resources share a name."""
        items: dict[str, Resource] = {}
        for count, r in enumerate(resources, 1):
            items[r.name] = r
            if len(items) != count:
                raise DuplicateName(r.name)
        return cls(
            type_url,
            MappingProxyType(items),
            sum([r.digest for r in items.values()]),
            _union_needs(items.values()),
        )

    def patch(self, remove: Iterable[str], add: Iterable[Resource]) -> ResourceSet:
        """A new set without ``remove`` and with ``add`` (which replaces members of its name).

        Costs one copy of the map plus the changed members. The union of references is kept
        as it was when every removed member's references are still needed by an added one
        (a changed cluster); otherwise it is recomputed.
        """
        items = self.items.copy()  # a mappingproxy copies its dict at C speed; dict() does not
        total = self.total
        dropped: list[Resource] = []
        for name in remove:
            old = items.pop(name, None)
            if old is not None:
                total -= old.digest
                dropped.append(old)
        added: list[Resource] = []
        for r in add:
            old = items.get(r.name)
            if old is not None:
                total -= old.digest
                dropped.append(old)
            items[r.name] = r
            total += r.digest
            added.append(r)
        needs = self._patched_needs(dropped, added)
        if needs is None:
            needs = _union_needs(items.values())
        same_names = len(items) == len(self.items) and all(r.name in items for r in dropped)
        names_id = self.names_id if same_names else None
        return ResourceSet(self.type_url, MappingProxyType(items), total, needs, names_id)

    def _patched_needs(self, dropped: list[Resource], added: list[Resource]) -> Refs | None:
        new = _union_needs(added)
        for r in dropped:
            for type_url, names in r.refs.items():
                if not names <= new.get(type_url, frozenset()):
                    return None
        if all(names <= self.needs.get(t, frozenset()) for t, names in new.items()):
            return self.needs
        merged = dict(self.needs)
        for type_url, names in new.items():
            merged[type_url] = merged.get(type_url, frozenset()) | names
        return MappingProxyType(merged)

    def __len__(self) -> int:
        return len(self.items)

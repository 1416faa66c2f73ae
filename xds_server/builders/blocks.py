"""Named rows of encoded entries, kept in blocks that the names cut, for tables joined often.

The observability node's route tables have an entry per downstream cluster: at 100,000
clusters about 40 MB together. Joining them and hashing them whole again on every change was
most of a one-cluster change's build. Kept in blocks, a change re-joins and re-hashes the block
it falls in (about a hundred rows), and a table is joined from a thousand blocks and versioned
from their digests (``resources.resource_from_pieces``).

A block ends after every name whose CRC-32 is a multiple of ``ROWS_PER_BLOCK`` (and at the
end): where blocks are cut depends on the names alone, never on the order of the changes that
led there. So a table patched a thousand times has the very blocks, bytes and version of one
built cold, on every replica, and an Envoy that reconnects to another replica is sent nothing.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from itertools import compress, repeat
from operator import and_, not_
from zlib import crc32

__all__ = ["ROWS_PER_BLOCK", "Block", "Blocks", "Row", "ends_block"]

ROWS_PER_BLOCK = 128
"""On average: small enough that re-joining one is nothing, large enough that a table of
100,000 rows is a few hundred pieces."""

Row = tuple[str, tuple[bytes, ...]]
"""A name and its entry in each column."""


def _cuts(names: Iterable[str], per_block: int) -> Iterator[bool]:
    """Whether a block ends after each name (in C: 100,000 names in a few ms)."""
    return map(not_, map(and_, map(crc32, map(str.encode, names)), repeat(per_block - 1)))


def ends_block(name: str, per_block: int) -> bool:
    return not crc32(name.encode()) & (per_block - 1)


@dataclass(frozen=True, slots=True)
class Block:
    names: tuple[str, ...]
    columns: tuple[tuple[bytes, ...], ...]
    joined: tuple[bytes, ...]
    """Each column's entries joined."""
    digests: tuple[bytes, ...]
    """SHA-256 of each of ``joined``."""


def _block(names: tuple[str, ...], columns: tuple[tuple[bytes, ...], ...]) -> Block:
    joined = tuple(b"".join(column) for column in columns)
    return Block(names, columns, joined, tuple(sha256(j).digest() for j in joined))


def _cut(names: Sequence[str], columns: Sequence[Sequence[bytes]], per_block: int) -> list[Block]:
    """``names`` (sorted) in blocks, each column sliced alike."""
    ends = [i + 1 for i in compress(range(len(names)), _cuts(names, per_block))]
    if not ends or ends[-1] != len(names):
        ends.append(len(names))
    blocks = []
    start = 0
    for end in ends:
        if end > start:
            part = tuple(tuple(column[start:end]) for column in columns)
            blocks.append(_block(tuple(names[start:end]), part))
        start = end
    return blocks


@dataclass(frozen=True)
class Blocks:
    """Rows in name order, ``width`` columns each, in name-cut blocks. Immutable: ``patch``
    returns new blocks and shares the unchanged ones."""

    width: int
    blocks: tuple[Block, ...]
    firsts: tuple[str, ...]
    """Each block's first name, to find the block a name belongs in by bisection."""
    count: int
    per_block: int = ROWS_PER_BLOCK
    """Rows per block on average, a power of two (tests cut small blocks)."""

    @classmethod
    def of(
        cls,
        names: Sequence[str],
        columns: Sequence[Sequence[bytes]],
        per_block: int = ROWS_PER_BLOCK,
    ) -> Blocks:
        """From sorted, distinct ``names`` and, per column, the entries in the same order."""
        if per_block < 1 or per_block & (per_block - 1):
            raise ValueError(f"per_block must be a power of two, not {per_block}")
        return cls._of_blocks(len(columns), _cut(names, columns, per_block), per_block)

    @classmethod
    def _of_blocks(cls, width: int, blocks: Sequence[Block], per_block: int) -> Blocks:
        firsts = tuple(b.names[0] for b in blocks)
        return cls(width, tuple(blocks), firsts, sum(len(b.names) for b in blocks), per_block)

    def names(self) -> Iterator[str]:
        for block in self.blocks:
            yield from block.names

    def column(self, i: int) -> tuple[list[bytes], list[bytes]]:
        """Column ``i`` as its blocks' joined entries and their digests."""
        return [b.joined[i] for b in self.blocks], [b.digests[i] for b in self.blocks]

    def patch(self, removed: Iterable[str], put: Iterable[Row]) -> Blocks:
        """Without the rows named in ``removed``; with ``put`` replacing rows of the same name
        or inserted in order. Only the blocks the names fall in are cut again (and the next
        one when a block lost the name that ended it)."""
        edits: dict[int, dict[str, tuple[bytes, ...] | None]] = {}
        for name in removed:
            edits.setdefault(self._index(name), {})[name] = None
        for name, entries in put:
            if len(entries) != self.width:
                raise ValueError(f"row {name!r} has {len(entries)} entries, not {self.width}")
            i = self._index(name)
            if self._row(i, name) != entries:
                edits.setdefault(i, {})[name] = entries
            elif i in edits:  # as it is (a trust-bundle change puts every row): no edit at all
                edits[i].pop(name, None)
        edits = {i: d for i, d in edits.items() if d}
        if not edits:
            return self
        if not self.blocks:
            rows = sorted((n, e) for n, e in edits[0].items() if e is not None)
            return Blocks.of([n for n, _ in rows], self._columns_of(rows), self.per_block)
        blocks: list[Block] = []
        done = 0
        for first in sorted(edits):
            if first < done:
                continue  # taken in by the run before
            blocks.extend(self.blocks[done:first])
            rows, last = self._edited(first, edits[first]), first
            while last + 1 < len(self.blocks) and (
                last + 1 in edits or (rows and not ends_block(rows[-1][0], self.per_block))
            ):
                last += 1
                rows += self._edited(last, edits.get(last, {}))
            blocks.extend(_cut([n for n, _ in rows], self._columns_of(rows), self.per_block))
            done = last + 1
        blocks.extend(self.blocks[done:])
        return Blocks._of_blocks(self.width, blocks, self.per_block)

    def _index(self, name: str) -> int:
        return max(bisect_right(self.firsts, name) - 1, 0)

    def _row(self, i: int, name: str) -> tuple[bytes, ...] | None:
        """The entries of row ``name`` if it is in block ``i``."""
        if i >= len(self.blocks):
            return None
        block = self.blocks[i]
        at = bisect_left(block.names, name)
        if at == len(block.names) or block.names[at] != name:
            return None
        return tuple(column[at] for column in block.columns)

    def _edited(self, i: int, edits: dict[str, tuple[bytes, ...] | None]) -> list[Row]:
        block = self.blocks[i]
        rows = dict(zip(block.names, zip(*block.columns, strict=True), strict=True))
        for name, entries in edits.items():
            if entries is None:
                rows.pop(name, None)
            else:
                rows[name] = entries
        return sorted(rows.items())

    def _columns_of(self, rows: Sequence[Row]) -> list[tuple[bytes, ...]]:
        if not rows:
            return [() for _ in range(self.width)]
        return [tuple(column) for column in zip(*(e for _, e in rows), strict=True)]

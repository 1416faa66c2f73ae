"""Rows in name-cut blocks: however a table got where it is, it has the blocks of a cold one."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xds_server.builders.blocks import Blocks

NAMES = [f"c{i:03d}" for i in range(60)]

edit = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(NAMES), st.binary(max_size=6)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES), st.just(b"")),
)


def cold(rows: dict[str, bytes], per_block: int) -> Blocks:
    names = sorted(rows)
    return Blocks.of(names, [[rows[n] for n in names], [n.encode() for n in names]], per_block)


def shape(b: Blocks) -> list[tuple[tuple[str, ...], tuple[bytes, ...], tuple[bytes, ...]]]:
    return [(block.names, block.joined, block.digests) for block in b.blocks]


@settings(max_examples=150, deadline=None)
@given(
    start=st.dictionaries(st.sampled_from(NAMES), st.binary(max_size=6)),
    batches=st.lists(st.lists(edit, max_size=5), min_size=1, max_size=8),
    per_block=st.sampled_from([1, 2, 4, 8]),
)
def test_patched_blocks_are_the_blocks_of_a_cold_build(
    start: dict[str, bytes], batches: list[list[tuple[str, str, bytes]]], per_block: int
) -> None:
    rows = dict(start)
    blocks = cold(rows, per_block)
    for batch in batches:
        removed = [n for kind, n, _ in batch if kind == "remove"]
        put = {n: v for kind, n, v in batch if kind == "put"}
        for n in removed:
            rows.pop(n, None)
        rows.update(put)
        blocks = blocks.patch(removed, [(n, (v, n.encode())) for n, v in put.items()])
        expected = cold(rows, per_block)
        assert shape(blocks) == shape(expected)
        assert blocks.count == len(rows) and list(blocks.names()) == sorted(rows)
        joined, digests = blocks.column(0)
        assert b"".join(joined) == b"".join(rows[n] for n in sorted(rows))
        assert digests == [hashlib.sha256(j).digest() for j in joined]


def test_a_change_re_cuts_only_the_block_it_falls_in() -> None:
    names = [f"cluster-{i:05d}" for i in range(5000)]
    before = Blocks.of(names, [[n.encode() for n in names]])
    assert 20 < len(before.blocks) < 80, "about one block per 128 rows"
    after = before.patch([], [("cluster-02500", (b"changed",))])
    kept = sum(1 for a, b in zip(after.blocks, before.blocks, strict=True) if a is b)
    assert kept == len(before.blocks) - 1
    assert b"changed" in b"".join(after.column(0)[0])


def test_rows_put_as_they_are_change_nothing_even_when_also_removed() -> None:
    names = [f"cluster-{i:05d}" for i in range(1000)]
    before = Blocks.of(names, [[n.encode() for n in names]])
    same = before.patch(["cluster-00007"], [(n, (n.encode(),)) for n in names])
    assert same.blocks == before.blocks and all(
        a is b for a, b in zip(same.blocks, before.blocks, strict=True)
    )
    assert same.count == 1000


def test_a_row_of_the_wrong_width_is_refused_by_name() -> None:
    blocks = Blocks.of(["east"], [[b"e"], [b"E"]])
    with pytest.raises(ValueError, match="'west' has 1 entries, not 2"):
        blocks.patch([], [("west", (b"w",))])
    with pytest.raises(ValueError, match="power of two"):
        Blocks.of(["east"], [[b"e"]], per_block=3)

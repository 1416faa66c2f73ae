"""Encode once per shape, then fill in names by byte replacement.

Thousands of clusters produce resources that differ only in a name and an address. Encoding
them costs tens of microseconds each even on the wire; replacing two placeholders in bytes
encoded once costs one. A placeholder has the byte length of the value it stands for, so
every length prefix in the encoding is already right, and so is every piece's length: the
pieces are filled as one joined blob and cut apart at the template's offsets.

A placeholder could also occur by accident in the encoding (a length byte that happens to be
``~``). Each shape is therefore encoded twice, with two different placeholder alphabets, and
both are filled with the same probe: the results differ if either alphabet occurred anywhere
but in the placeholders, and then that shape is always encoded directly. Values that are not
plain ASCII, or contain a placeholder character, are encoded directly too.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Stencil"]

Encode = Callable[..., tuple[bytes, ...]]
"""``encode(*values, *shape)``: strings to fill in, then anything else the bytes depend on."""

_FIRST = "~^`"
_SECOND = "{}|"
_RESERVED = frozenset(_FIRST + _SECOND)


@dataclass(frozen=True)
class _Template:
    blob: bytes
    placeholders: tuple[bytes, ...]
    cuts: tuple[tuple[int, int], ...]
    """Where each piece starts and ends in ``blob`` (and in every filled blob)."""

    def fill(self, values: tuple[str, ...]) -> tuple[bytes, ...]:
        blob = self.blob
        for placeholder, value in zip(self.placeholders, values, strict=True):
            blob = blob.replace(placeholder, value.encode())
        return tuple([blob[start:end] for start, end in self.cuts])


def _template(pieces: tuple[bytes, ...], alphabet: str, lengths: tuple[int, ...]) -> _Template:
    cuts = []
    start = 0
    for piece in pieces:
        cuts.append((start, start + len(piece)))
        start += len(piece)
    placeholders = tuple((mark * n).encode() for mark, n in zip(alphabet, lengths, strict=False))
    return _Template(b"".join(pieces), placeholders, tuple(cuts))


def _plain(value: str) -> bool:
    return bool(value) and value.isascii() and _RESERVED.isdisjoint(value)


class Stencil:
    def __init__(self, encode: Encode, values: int, cache: int = 256) -> None:
        if values > len(_FIRST):
            raise ValueError(f"at most {len(_FIRST)} values")
        self.encode = encode
        self._template = lru_cache(maxsize=cache)(self._render)

    def _render(self, lengths: tuple[int, ...], shape: tuple[Hashable, ...]) -> _Template | None:
        first = self.encode(*(m * n for m, n in zip(_FIRST, lengths, strict=False)), *shape)
        second = self.encode(*(m * n for m, n in zip(_SECOND, lengths, strict=False)), *shape)
        probe = tuple("a" * n for n in lengths)
        template = _template(first, _FIRST, lengths)
        if template.fill(probe) != _template(second, _SECOND, lengths).fill(probe):
            return None  # a placeholder character occurs by accident: encode directly
        return template

    def __call__(self, values: tuple[str, ...], *shape: Hashable) -> tuple[bytes, ...]:
        if not all(map(_plain, values)):
            return self.encode(*values, *shape)
        template = self._template(tuple(map(len, values)), shape)
        if template is None:
            return self.encode(*values, *shape)
        return template.fill(values)

    def cache_clear(self) -> None:
        self._template.cache_clear()

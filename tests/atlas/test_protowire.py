from __future__ import annotations

import pytest
from google.protobuf import wrappers_pb2

from atlas.protowire import read_varint, varint


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63)])
def test_varint_is_protobufs_int64(value: int) -> None:
    # Int64Value {value = 1}: tag 0x08, then the varint.
    expected = wrappers_pb2.Int64Value(value=value).SerializeToString()
    assert (b"\x08" + varint(value) if value else b"") == expected
    decoded, end = read_varint(varint(value), 0)
    assert end == len(varint(value))
    assert decoded == value & (2**64 - 1)


def test_a_cut_short_varint_is_an_error() -> None:
    with pytest.raises(ValueError, match="truncated varint"):
        read_varint(varint(300)[:1], 0)

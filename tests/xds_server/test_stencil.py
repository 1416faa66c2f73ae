"""Stencils: filled-in bytes equal a direct encoding, and accidents fall back to one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atlas.config import Settings
from xds_server import wire
from xds_server.builders.downstream import _THANOS_ROUTE, _encode_thanos_route
from xds_server.builders.observability import _PART, _encode_part
from xds_server.builders.stencil import Stencil

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?", fullmatch=True)
address = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,10}){1,3}", fullmatch=True),
)
SETTINGS = Settings()


@given(name=label, addr=address, static=st.booleans(), replicas=st.integers(1, 4))
def test_observability_part_equals_direct_encoding(
    name: str, addr: str, static: bool, replicas: int
) -> None:
    assert _PART((name, addr), static, replicas, SETTINGS) == _encode_part(
        name, addr, static, replicas, SETTINGS
    )


@given(name=label, replicas=st.integers(1, 4))
def test_thanos_route_equals_direct_encoding(name: str, replicas: int) -> None:
    assert _THANOS_ROUTE((name,), replicas) == _encode_thanos_route(name, replicas)


def _calls(stencil_encode: list[tuple[str, ...]]) -> Stencil:
    def encode(name: str, constant: str) -> tuple[bytes, ...]:
        stencil_encode.append((name, constant))
        return (wire.text(1, name) + wire.text(2, constant),)

    return Stencil(encode, values=1)


def test_placeholder_character_in_the_constant_part_falls_back_to_direct_encoding() -> None:
    seen: list[tuple[str, ...]] = []
    stencil = _calls(seen)
    # The constant part contains "~~~", the first alphabet's placeholder for a 3-byte value:
    # replacing blindly would corrupt it, so the shape is refused and encoded directly.
    assert stencil(("abc",), "x~~~y") == (wire.text(1, "abc") + wire.text(2, "x~~~y"),)
    assert seen[-1] == ("abc", "x~~~y"), "encoded directly"


def test_values_that_cannot_be_placeholders_are_encoded_directly() -> None:
    seen: list[tuple[str, ...]] = []
    stencil = _calls(seen)
    for value in ("", "naïve", "a~b", "x{y"):
        assert stencil((value,), "k") == (wire.text(1, value) + wire.text(2, "k"),)
        assert seen[-1] == (value, "k")


def test_a_shape_is_encoded_once_then_filled() -> None:
    seen: list[tuple[str, ...]] = []
    stencil = _calls(seen)
    stencil(("east",), "k")
    rendered = len(seen)
    assert stencil(("west",), "k") == (wire.text(1, "west") + wire.text(2, "k"),)
    assert len(seen) == rendered, "same lengths and shape: no new encoding"

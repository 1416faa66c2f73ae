"""The collector is paused for a build and comes back as it was, also when the build fails."""

from __future__ import annotations

import gc

import pytest

from xds_server.collector import collector_paused


def test_a_build_pauses_the_collector_and_gives_it_back_even_when_it_fails() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a build that failed")
    assert gc.isenabled()


def test_a_collector_someone_else_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()

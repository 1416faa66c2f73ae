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


def test_what_a_build_made_is_frozen_before_the_collector_resumes() -> None:
    """Else the first young collection after a build walks all it made (and the loop waits)."""
    before = gc.get_freeze_count()
    try:
        with collector_paused():
            made = [[i] for i in range(1000)]
        assert gc.get_freeze_count() - before >= len(made)
        assert gc.get_count()[0] < 100, "nothing of the build is left to collect young"
        with pytest.raises(RuntimeError), collector_paused():
            frozen = gc.get_freeze_count()
            more = [[i] for i in range(1000)]
            raise RuntimeError(f"a failed build of {len(more)}")
        assert gc.get_freeze_count() == frozen, "a failed build freezes nothing"
    finally:
        gc.unfreeze()

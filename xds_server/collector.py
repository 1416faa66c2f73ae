"""Python's cyclic garbage collector against a heap of snapshots and 10,000 streams.

Two habits, both measured (docs/BENCHMARKS.md):

* During a build the collector is paused (``collector_paused``) and the result is frozen
  as it resumes: a build allocates about a million objects that all survive, and the
  collector would otherwise walk them again and again, starting with the first young
  collection after the build.
* The daemon sets the collector's thresholds (``tune_for_streams``): every stream holds about
  124 tracked objects, and with Python's defaults a fleet reconnecting at once set off a full
  collection every few hundred streams, each walking every stream opened so far; middle
  collections come often enough that each walks a few thousand streams, not ten thousand.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["STREAM_THRESHOLDS", "collector_paused", "tune_for_streams"]

STREAM_THRESHOLDS = (50_000, 5, 400)
"""Allocations before a young collection, young collections before a middle one, middle ones
before an old one; Python's are (700, 10, 10). A reconnect storm costs the new replica much
less CPU with these. Every stream leaves about 124 tracked objects (most of them gRPC's and
asyncio's), which a middle collection walks once: with a middle one every 20 young, one long
collection came late in the storm and held the event loop (DNS, every other stream); every 5,
a few short ones take its place (docs/BENCHMARKS.md, "xDS reconnect storm", measures both
and the longest pause). Old collections stay as rare, every 2,000 young ones. The cost is
cyclic garbage living a little longer: at most about 50,000 objects between young
collections."""


def tune_for_streams() -> None:
    """Set ``STREAM_THRESHOLDS`` for this process (the daemon's, the benchmarks' servers)."""
    gc.set_threshold(*STREAM_THRESHOLDS)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a build runs, and freeze what it made.

    A cold build at 10,000 clusters allocates about a million objects that all survive, so the
    collector would walk the growing heap again and again (a third of the build's time). The
    builders create no reference cycles, so nothing is lost by pausing it. The young objects
    are frozen before the collector resumes: otherwise the first allocation after it (on
    whichever thread) collects the build's objects young, with the event loop waiting (0.2 s
    of each trust-bundle change at 10,000 clusters). They are still freed by reference
    counting when replaced. A build that fails freezes nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()

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
before an old one; Python's are (700, 10, 10). A 10,000-stream reconnect storm: 12.4-14.2 s
of the new replica's CPU with Python's, 9.4 s with (50,000, 20, 100). Every stream leaves
about 124 tracked objects (most of them gRPC's and asyncio's), which a middle collection
walks once: with a middle one every 20 young, the storm's came at about 9,000 streams and
held the event loop (DNS, every other stream) for 450-490 ms; every 5, three of them take
about 150 ms each (bench/xds_storm.py reports the longest). Old collections stay as rare,
every 2,000 young ones. The cost is cyclic garbage living a little longer: at most about
50,000 objects between young collections."""


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

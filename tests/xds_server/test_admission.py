"""The per-stream token bucket: a burst, then the rate, and how long to wait for more."""

from __future__ import annotations

import pytest

from atlas.config import AdsSettings
from xds_server.admission import TokenBucket


def test_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(0.0) == pytest.approx(0.1), "the sixth waits for a tenth of a second"
    assert bucket.take(0.0) == pytest.approx(0.2)
    assert bucket.take(1.0) == 0.0, "a second later, ten more have come in"


def test_waiting_as_told_keeps_a_flood_at_the_rate() -> None:
    bucket = TokenBucket(rate=20.0, burst=10, now=0.0)
    now, taken = 0.0, 0
    while now < 5.0:
        now += bucket.take(now)
        taken += 1
    assert taken == pytest.approx(10 + 20 * 5, abs=2)


def test_the_observability_node_may_hold_more_streams() -> None:
    limits = AdsSettings()
    assert limits.streams_for("east", "atlas") == 3
    assert limits.streams_for("atlas", "atlas") == 16

"""A randomized, model-checked run of operator actions and faults against real Atlas, real
Envoys and grpc-go sidecars (tests/e2e/randomized): a fixed set of seeds under each xDS
protocol, and a deliberately broken Atlas that the same run must catch."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.randomized.checks import Violation
from tests.e2e.randomized.run import RandomRun, Summary

pytestmark = pytest.mark.e2e

ACTIONS = 60


@pytest.mark.parametrize(
    ("api_type", "seed"), [("GRPC", 1), ("DELTA_GRPC", 2)], ids=["sotw", "delta"]
)
def test_random_changes_never_break_routing(tmp_path: Path, api_type: str, seed: int) -> None:
    summary = RandomRun(tmp_path, seed=seed, api_type=api_type).run(ACTIONS)
    print(f"seed {seed}, {api_type}: {len(summary.steps)} steps, {summary.calls} calls")
    print("longest unroutable window per action:", summary.unroutable)
    assert len(summary.steps) == ACTIONS + 2
    assert summary.calls > 1000 and summary.resolutions > 100 and summary.alerts > 100


def test_the_run_catches_an_atlas_that_breaks_before_it_makes(tmp_path: Path) -> None:
    """Make-before-break turned off (routes first, nothing held back): the run must fail."""
    broken = Path(__file__).with_name("randomized") / "broken.py"
    run = RandomRun(tmp_path, seed=3, api_type="GRPC", atlas_argv=[sys.executable, str(broken)])
    with pytest.raises(Violation) as caught:
        run.run(40)
    print(caught.value)
    assert "seed 3" in str(caught.value)


SOAK_ACTIONS = int(os.environ.get("ATLAS_SOAK_ACTIONS") or 0)
"""The long soak (bench/soak.py sets it): thousands of actions, a random seed each run."""


@pytest.mark.skipif(not SOAK_ACTIONS, reason="the long soak runs from bench/soak.py")
@pytest.mark.parametrize("api_type", ["GRPC", "DELTA_GRPC"], ids=["sotw", "delta"])
def test_soak(tmp_path: Path, api_type: str) -> None:
    seed = int(os.environ.get("ATLAS_SOAK_SEED") or random.SystemRandom().randrange(1 << 30))
    out = Path(os.environ.get("ATLAS_SOAK_OUT") or tmp_path) / f"{api_type}.json"
    result = {"api_type": api_type, "seed": seed, "actions": SOAK_ACTIONS}
    started = time.monotonic()
    try:
        summary = RandomRun(tmp_path, seed=seed, api_type=api_type).run(SOAK_ACTIONS)
    except Violation as err:
        result |= {"violation": str(err).splitlines()[0]}
        raise
    finally:
        result["seconds"] = round(time.monotonic() - started)
        out.write_text(json.dumps(result | _figures(locals().get("summary"))))
    assert len(summary.steps) == SOAK_ACTIONS + 2


def _figures(summary: object) -> dict[str, object]:
    if summary is None:
        return {}
    assert isinstance(summary, Summary)
    kinds: dict[str, int] = {}
    for step in summary.steps:
        kinds[step.split()[0]] = kinds.get(step.split()[0], 0) + 1
    return {
        "steps": len(summary.steps),
        "kinds": kinds,
        "calls": summary.calls,
        "resolutions": summary.resolutions,
        "alerts": summary.alerts,
        "unroutable": summary.unroutable,
        "violations": 0,
    }

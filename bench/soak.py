"""The randomized, model-checked run of tests/e2e/randomized for thousands of actions, under
state of the world and delta, with a random seed each: prints and records what ran, whether
any invariant broke, and the longest time a replica was not routable per kind of action.

The run itself is the test suite's (``tests/e2e/test_randomized.py::test_soak``, which only
runs when ``ATLAS_SOAK_ACTIONS`` is set); this script starts it with pytest and reads the
figures each protocol's run writes.

    .venv/bin/python -m bench.soak --actions 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import write_section

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/e2e/test_randomized.py::test_soak"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=2000, help="actions per protocol")
    p.add_argument("--seed", type=int, default=0, help="0: a random seed per protocol")
    p.add_argument("--no-write", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="atlas-soak-"))
    env = dict(os.environ, ATLAS_SOAK_ACTIONS=str(args.actions), ATLAS_SOAK_OUT=str(out))
    if args.seed:
        env["ATLAS_SOAK_SEED"] = str(args.seed)
    timeout = max(3600, args.actions * 6)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
    command += ["-o", f"timeout={timeout}", "-s"]
    code = subprocess.call(command, cwd=ROOT, env=env)
    runs = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    body = _table(runs)
    print(body)
    if not args.no_write and runs:
        write_section("Randomized soak (bench/soak.py)", body)
    return code


def _mapping(value: object) -> dict[str, float]:
    """A per-kind figure of a run's JSON, or nothing when the run did not get that far."""
    return dict(value) if isinstance(value, dict) else {}


def _table(runs: list[dict[str, object]]) -> str:
    lines = [
        "| protocol | seed | actions | violations | calls / resolutions / alerts judged | time |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        violation = r.get("violation")
        lines.append(
            f"| {r['api_type']} | {r['seed']} | {r['actions']} | "
            f"{1 if violation else 0}{': ' + str(violation) if violation else ''} | "
            f"{r.get('calls', '-')} / {r.get('resolutions', '-')} / {r.get('alerts', '-')} | "
            f"{r['seconds']} s |"
        )
    kinds = sorted({k for r in runs for k in _mapping(r.get("unroutable"))})
    if kinds:
        lines += ["", "Longest time a replica an action touched was not routable, per kind:", ""]
        lines.append("| action | " + " | ".join(str(r["api_type"]) for r in runs) + " |")
        lines.append("|---|" + "---|" * len(runs))
        for kind in kinds:
            cells = []
            for r in runs:
                value = _mapping(r.get("unroutable")).get(kind)
                count = _mapping(r.get("kinds")).get(kind, 0)
                cells.append(f"{value:.2f} s ({count}x)" if value is not None else "-")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every action is judged against the model: each replica answers the Thanos-exact "
        "probe with its own labels outside the changes that touch it, DNS matches, every "
        "alert arrives, no NACK, no request routed to a cluster its Envoy lacked (NC), and "
        "`/status` and `atlas status` agree. A change is allowed 2 s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""The randomized, model-checked run in Kubernetes mode (tests/e2e/randomized/kube.py): two
Atlas replicas against the real API server, Envoys spread over both, with the leader killed,
the API server restarted and a CA rotation among the operator's changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas.kube import Kube
from tests.e2e.randomized.kube import KubeRun
from tests.kube.cluster import KubeCluster

pytestmark = pytest.mark.e2e

ACTIONS = 40


def test_random_changes_and_outages_with_two_replicas(
    tmp_path: Path, kube_cluster: KubeCluster, admin: Kube
) -> None:
    run = KubeRun(tmp_path, seed=5, api_type="GRPC", kube=kube_cluster, admin=admin)
    summary = run.run(ACTIONS)
    print(f"seed 5: {len(summary.steps)} steps, {summary.calls} calls")
    print("longest unroutable window per action:", summary.unroutable)
    assert len(summary.steps) == ACTIONS + 2 and summary.calls > 500

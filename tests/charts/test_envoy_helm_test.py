"""The envoy chart's `helm test`: its pod asks the Envoy's metrics Service whether the Envoy
holds its ADS stream to Atlas. Rendered with real Helm; its script run against a real Envoy
connected through the real observability Envoy to a real Atlas, and again once Atlas is gone.
What stands in for Kubernetes: the script runs on this host, not in the Atlas image, and is
pointed at the Envoy's metrics listener instead of the Service in front of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atlas.bootstrap import BootstrapSpec, CertPaths, build_bootstrap
from atlas.demo.envoy import Envoy
from atlas.demo.ports import free_port
from tests.charts.render import cluster_values, find, objects, render
from tests.e2e.conftest import running_network

pytestmark = pytest.mark.e2e


def test_the_helm_test_passes_only_while_the_envoy_is_connected(tmp_path: Path) -> None:
    docs = objects(render("envoy", cluster_values(tmp_path), release="envoy"))
    pod = find(docs, "Pod", "envoy-test-connected")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    python, flag, script, url = pod["spec"]["containers"][0]["command"]
    assert (python, flag) == ("python3", "-c")
    service = find(docs, "Service", "envoy-metrics")
    assert service["spec"]["type"] == "ClusterIP"
    port = service["spec"]["ports"][0]["port"]
    assert url == f"http://envoy-metrics.monitoring.svc:{port}/stats/prometheus"

    with running_network(tmp_path / "net") as net:
        net.envoys.pop("west").stop()
        metrics = free_port("127.0.0.1")
        spec = BootstrapSpec(
            node_id="west",
            ads_host=net.obs_ip,
            ads_port=net.obs_ports["ads"],
            certs=CertPaths(str(net.root / "envoy-west" / "certs")),
            admin_address=net.envoy_ips["west"],
            admin_port=free_port(net.envoy_ips["west"]),
            metrics_port=metrics,
        )
        west = Envoy("west", net.root / "envoy-west-metrics", build_bootstrap(spec))
        west.start()
        net.envoys["west"] = west
        here = f"http://127.0.0.1:{metrics}/stats/prometheus"

        def helm_test(wait: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-c", script, here, str(wait)],
                capture_output=True,
                text=True,
                timeout=wait + 20,
                check=False,
            )

        passed = helm_test(30)
        assert passed.returncode == 0, passed.stdout
        assert "connected to Atlas's ADS: envoy_control_plane_connected_state" in passed.stdout
        assert net.atlas is not None
        net.atlas.stop()
        failed = helm_test(6)
        assert failed.returncode == 1, failed.stdout
        assert "not connected to Atlas's ADS: envoy_control_plane_connected_state" in failed.stdout

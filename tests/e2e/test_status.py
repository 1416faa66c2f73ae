"""`atlas status` against a real network: healthy, then each way a cluster degrades (its
Envoy disconnected, an update NACKed, a sidecar unreachable through the tunnel), and a daemon
that does not answer; the exit code and what it says in each case."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from atlas.demo.launch import atlas_command
from atlas.demo.ports import free_port
from tests.conftest import run_atlas
from tests.e2e.conftest import running_network
from tests.e2e.network import AtlasNetwork
from tests.fakes.thanos import Sidecar, info
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AtlasNetwork]:
    with running_network(tmp_path_factory.mktemp("status")) as network:
        wait_until(
            lambda: info(network.thanos_address, network.thanos_authority("west-0")),
            within=30,
            what="network up",
        )
        yield network


def status(net: AtlasNetwork, *args: str) -> tuple[int, str]:
    result = run_atlas(["status", "--url", f"http://{net.atlas_ip}:{net.http_port}", *args])
    assert result.stderr == "", result.stderr
    return result.returncode, result.stdout


def row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(name + " "))


def settled(net: AtlasNetwork) -> tuple[int, str]:
    return wait_until(
        lambda: r if (r := status(net))[0] == 0 else None, within=20, what="healthy", interval=0.3
    )


def test_a_healthy_network(net: AtlasNetwork) -> None:
    _, out = settled(net)
    assert out.endswith("healthy\n") and "ready, leader" in out
    east = row(out, "east")
    assert "connected (" in east and "in sync" in east
    assert "east-0 cluster=east,replica=0, east-1 cluster=east,replica=1" in east
    code, text = status(net, "-o", "json")
    report = json.loads(text)
    assert code == 0 and report["healthy"] is True
    clusters = {c["name"]: c for c in report["clusters"]}
    assert set(clusters) == {"(observability)", "east", "west"}
    east_json = clusters["east"]
    assert east_json["connected"] and east_json["in_sync"]
    assert east_json["versions"]["cluster"]["serving"] == east_json["versions"]["cluster"]["acked"]
    assert east_json["leaf_expires"] and east_json["bootstrap_expires"]
    assert [p["method"] for p in east_json["sidecars"]] == ["/thanos.info.Info/Info"] * 2
    code, text = status(net, "-o", "yaml")
    assert code == 0 and yaml.safe_load(text)["healthy"] is True


def test_an_unreachable_sidecar(net: AtlasNetwork) -> None:
    settled(net)
    net.sidecars["west-0"].stop()
    try:
        code, out = status(net)
        assert code == 1 and out.endswith("DEGRADED\n")
        assert "west-0 UNREACHABLE" in row(out, "west")
        assert "west: sidecar west-0: UNAVAILABLE" in out
        assert "east-0 cluster=east" in row(out, "east"), "the others are unaffected"
    finally:
        net.sidecars["west-0"] = Sidecar(
            net.ip(22), net.sidecar_port, {"cluster": "west", "replica": "0"}
        )
    settled(net)


def test_a_disconnected_envoy(net: AtlasNetwork) -> None:
    settled(net)
    east = net.envoys["east"]
    east.kill(signal.SIGKILL)
    try:
        _, out = wait_until(
            lambda: (
                r if (r := status(net))[0] == 1 and "DISCONNECTED" in row(r[1], "east") else None
            ),
            within=10,
            what="east disconnected",
        )
        assert "east: Envoy not connected to any replica" in out
        assert "connected (" in row(out, "west")
    finally:
        east.start()
    settled(net)


def test_a_rejected_update(net: AtlasNetwork) -> None:
    settled(net)
    blocker = socket.socket()
    blocker.bind((net.envoy_ips["west"], 0))
    blocker.listen()
    try:
        assert net.atlas is not None
        net.atlas.stop()
        net.start_atlas(alert_relay=blocker.getsockname()[1])  # west cannot bind it: NACK
        _, out = wait_until(
            lambda: r if (r := status(net))[0] == 1 and "NACK" in row(r[1], "west") else None,
            within=20,
            what="west's NACK",
        )
        assert "west: last update rejected:" in out and str(blocker.getsockname()[1]) in out
        report = json.loads(status(net, "-o", "json")[1])
        west = next(c for c in report["clusters"] if c["name"] == "west")
        assert west["versions"]["listener"]["serving"] != west["versions"]["listener"]["acked"]
    finally:
        blocker.close()
        assert net.atlas is not None
        net.atlas.stop()
        net.start_atlas()
    settled(net)


def test_an_envoy_refused_by_atlas_says_why(net: AtlasNetwork) -> None:
    """West removed and added again: its old bootstrap credential was revoked with it, so its
    Envoy (not re-installed) is refused on every retry. The row says so and why, with the
    expiry of the certificate it now tries with; the config column is not "out of sync"."""
    settled(net)
    manifest = net.source / "west.yaml"
    text = manifest.read_text()
    manifest.unlink()
    wait_until(
        lambda: "west" not in {c["name"] for c in net.status()["clusters"]},
        within=10,
        what="west removed",
    )
    manifest.write_text(text)
    try:
        # First "revoked" (its stream ended as it was removed), then, at the Envoy's retry,
        # the reason it stays out.
        _, out = wait_until(
            lambda: (
                r if (r := status(net))[0] == 1 and "_credential)" in row(r[1], "west") else None
            ),
            within=20,
            what="west refused for its credential",
        )
        west = row(out, "west")
        assert "REFUSED (no_credential)" in west or "REFUSED (old_credential)" in west, west
        assert "OUT OF SYNC" not in west and "NOT IN SYNC" not in west
        assert "west: Envoy refused by Atlas: cluster 'west'" in out
    finally:
        net.envoys["west"].stop()
        net.start_cluster_envoy("west")
    settled(net)


def test_an_unreachable_daemon(tmp_path: Path) -> None:
    """Exit 3 (2 is argparse's), the reason, and no rows made up from nothing."""
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}/status"
    result = run_atlas(["status", "--url", url])
    assert result.returncode == 3
    assert f"replica {url}: UNREACHABLE: connection refused" in result.stdout
    assert "(observability)" not in result.stdout and "DISCONNECTED" not in result.stdout


def test_dns_is_checked_against_what_the_replicas_serve(net: AtlasNetwork) -> None:
    """``--dns``: the SRV answer Thanos Query gets must list every sidecar /status serves (the
    chart's ``helm test`` runs this against the release's DNS Service)."""
    settled(net)
    code, out = status(net, "--no-probe", "--dns", f"{net.atlas_ip}:{net.dns_port}")
    assert code == 0, out
    assert f"dns {net.atlas_ip}:{net.dns_port}: NOERROR, 3 sidecar target(s)" in out
    silent = free_port("127.0.0.1")
    code, out = status(net, "--no-probe", "--dns", f"127.0.0.1:{silent}")
    assert code == 1 and f"dns: DNS 127.0.0.1:{silent}: " in out and out.endswith("DEGRADED\n")


def test_watch_repeats_until_interrupted(net: AtlasNetwork) -> None:
    url = f"http://{net.atlas_ip}:{net.http_port}"
    proc = subprocess.Popen(
        [*atlas_command(), "status", "--url", url, "--watch", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    output = proc.stdout
    assert output is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(output.readline, "")))
    reader.start()
    try:
        wait_until(lambda: lines.count("healthy\n") >= 2, within=20, what="two reports")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        reader.join(10)
    assert proc.returncode == 0

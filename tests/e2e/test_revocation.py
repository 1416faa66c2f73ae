"""A removed cluster is locked out at once, through real Envoys: its alerts are refused, its ADS
stream ends and its reconnects are refused, its credentials are deleted, and the other clusters
see nothing of it. Added again, it is a new member: every credential of the old membership
stays refused and the new one works."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import grpc
import pytest

from tests.e2e.clients import Traffic, ads_attempt, connected, http, refused, thanos, tls_get
from tests.e2e.network import AtlasNetwork
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

ALERT = json.dumps([{"labels": {"alertname": "Revocation", "cluster": "north"}}]).encode()


def intake(net: AtlasNetwork, cert: Path, key: Path, ca: Path) -> int:
    """An alert POST's status at the observability Envoy's alert intake, with this leaf."""
    return tls_get(
        net.obs_ip,
        net.obs_ports["alert_intake"],
        ca=ca,
        cert=cert,
        key=key,
        host_header="alertmanager-0",
    )


def relay(net: AtlasNetwork, name: str) -> int:
    """An alert as the cluster's Prometheus sends it: to its Envoy's relay port."""
    status, _ = http(
        net.envoy_ips[name],
        net.ds_ports["alert_relay"],
        "/api/v2/alerts",
        method="POST",
        headers={"Host": "alertmanager-0", "Content-Type": "application/json"},
        body=ALERT,
    )
    return status


def refusals(net: AtlasNetwork, reason: str) -> float:
    pattern = rf'^atlas_xds_refused_streams_total{{reason="{reason}"}} (\S+)$'
    match = re.search(pattern, net.metrics(), re.MULTILINE)
    return float(match[1]) if match else 0.0


def keep(files: tuple[Path, Path], into: Path) -> tuple[Path, Path]:
    """Copies of credential files (Atlas deletes its own when the cluster goes)."""
    into.mkdir(parents=True, exist_ok=True)
    kept = []
    for f in files:
        (into / f.name).write_bytes(f.read_bytes())
        kept.append(into / f.name)
    return kept[0], kept[1]


def test_a_removed_cluster_is_locked_out_and_comes_back_only_with_new_credentials(
    network: AtlasNetwork, tmp_path: Path
) -> None:
    net = network
    wait_until(lambda: thanos(net, "east-0") and thanos(net, "west-0"), within=30, what="up")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(net.pki.ca().bundle_pem)
    net.add_cluster("north", 3)
    wait_until(lambda: thanos(net, "north-0"), within=10, what="north routable")
    wait_until(lambda: relay(net, "north") == 200, within=10, what="north's alerts arrive")
    old_leaf = keep(net.leaf_files("north"), tmp_path / "old-leaf")
    old_bootstrap = keep(net.bootstrap_files("north"), tmp_path / "old-bootstrap")
    assert intake(net, *old_leaf, ca) == 200

    with Traffic(net, ("east-0", "west-0")) as traffic:
        (net.source / "north.yaml").unlink()
        removed = time.monotonic()
        wait_until(
            lambda: intake(net, *old_leaf, ca) == 403,
            within=1.0,
            what="alerts refused",
            interval=0.02,
        )
        alerts_refused = time.monotonic() - removed
        wait_until(
            lambda: "north" not in connected(net),
            within=1.0,
            what="ADS stream ended",
            interval=0.02,
        )
        stream_ended = time.monotonic() - removed
        assert relay(net, "north") == 403, "north's own Envoy relays its alerts: refused"
        assert refused(lambda: thanos(net, "north-0"))
        before = refusals(net, "not_a_member")
        wait_until(
            lambda: refusals(net, "not_a_member") > before,
            within=15,
            what="north's Envoy reconnects and is refused",
        )
        time.sleep(0.5)
    traffic.assert_all_succeeded(at_least=20)
    print(f"alerts refused {alerts_refused:.2f}s, ADS stream ended {stream_ended:.2f}s")
    assert "north" not in connected(net), "still refused"
    stored = net.state / "pki"
    assert (
        not (stored / "node-north.crt").exists() and not (stored / "bootstrap-north.crt").exists()
    )
    denied = ads_attempt(net, "north", *(f.read_bytes() for f in old_bootstrap))
    assert isinstance(denied, grpc.RpcError)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not a cluster of this Atlas" in (denied.details() or "")
    log = (net.root / "atlas.log").read_text()
    # Each reason once (the stream ended; reconnects refused), however often the Envoy retries.
    assert refusals(net, "not_a_member") >= 2 or "north" not in connected(net)
    assert log.count("refused ADS stream for node north") == 2, "logged once per reason"
    assert log.count("credentials are revoked") == 1

    # Added again, as an operator would: Service, new values, Envoy re-installed.
    net.envoys.pop("north").stop()
    new_envoy = net.add_cluster("north", 3)
    wait_until(lambda: thanos(net, "north-0"), within=10, what="north routable again")
    wait_until(lambda: "north" in connected(net), within=10, what="new Envoy connected")
    assert new_envoy.proc is not None
    denied = ads_attempt(net, "north", *(f.read_bytes() for f in old_bootstrap))
    assert isinstance(denied, grpc.RpcError)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "earlier membership" in (denied.details() or "")
    assert intake(net, *old_leaf, ca) == 403, "the old leaf stays refused"
    assert intake(net, *net.leaf_files("north"), ca) == 200, "the new one works"
    wait_until(lambda: relay(net, "north") == 200, within=10, what="new Envoy relays alerts")

"""Thanos Query as it really discovers and dials, through real Envoys, to grpc-go sidecars.

The client (tests/go/.../thanos-query-probe) does what Thanos Query does for
``--endpoint=dnssrvnoa+_grpc._tcp.sidecars.thanos.atlas.``: the SRV lookup through Atlas's DNS
(miekg/dns, EDNS0, TCP on truncation), each target joined as resolved, trailing dot included,
with the SRV port, dialed by grpc-go (``:authority``: ``east-0.sidecars.thanos.atlas.:<port>``),
then ``/thanos.info.Info/Info`` and a ``/thanos.Store/Series`` stream. The sidecars run grpc-go's
own server, which enforces gRPC's default ping policy as a real Thanos sidecar does.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import grpc
import pytest

from tests.e2e.network import AtlasNetwork, GoSidecar
from tests.fakes.thanos import info, series
from tests.gotools import go_tool
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

EVERY_SIDECAR = "dnssrvnoa+_grpc._tcp.sidecars.thanos.atlas."
SIDECARS = {"east-0": ("east", "0"), "east-1": ("east", "1"), "west-0": ("west", "0")}


def thanos_query(
    net: AtlasNetwork, endpoint: str = EVERY_SIDECAR, *, series_timeout: str = "30s"
) -> dict[str, dict[str, Any]]:
    """Each endpoint Thanos Query would use, with what its Info and Series calls returned."""
    done = subprocess.run(
        [
            go_tool("thanos-query-probe"),
            "-dns",
            f"{net.atlas_ip}:{net.dns_port}",
            "-endpoint",
            endpoint,
            "-series-timeout",
            series_timeout,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    return {r["endpoint"]: r for r in results}


def healthy(results: dict[str, dict[str, Any]]) -> bool:
    return bool(results) and all(
        "info_error" not in r and "series_error" not in r for r in results.values()
    )


EAST_ONLY = "dnssrvnoa+_grpc._tcp.east.sidecars.thanos.atlas."


def test_thanos_query_reaches_every_sidecar_replica(go_network: AtlasNetwork) -> None:
    net = go_network
    results = wait_until(
        lambda: r if healthy(r := thanos_query(net)) and len(r) == 3 else None,
        within=30,
        what="Thanos Query finds three healthy endpoints",
        interval=0.2,
    )
    port = net.obs_ports["thanos"]
    assert sorted(results) == [f"{t}.sidecars.thanos.atlas.:{port}" for t in sorted(SIDECARS)]
    for target, (cluster, replica) in SIDECARS.items():
        result = results[f"{target}.sidecars.thanos.atlas.:{port}"]
        assert result["info_labels"] == {"cluster": cluster, "replica": replica}, target
        assert result["series"] == 3, target
        assert result["series_labels"] == {
            "__name__": "up",
            "cluster": cluster,
            "replica": replica,
            "series": "0",
        }


def test_one_clusters_name_finds_only_its_replicas(go_network: AtlasNetwork) -> None:
    results = wait_until(
        lambda: r if healthy(r := thanos_query(go_network, EAST_ONLY)) else None,
        within=30,
        what="east's endpoints",
    )
    assert sorted(r["info_labels"]["replica"] for r in results.values()) == ["0", "1"]
    assert {r["info_labels"]["cluster"] for r in results.values()} == {"east"}


def refused(net: AtlasNetwork, authority: str) -> grpc.RpcError:
    try:
        info(net.thanos_address, authority)
    except grpc.RpcError as err:
        return err
    raise AssertionError(f"{authority} was routed")


def refusals(net: AtlasNetwork) -> dict[str, int]:
    stats = net.envoys["atlas"].stats("atlas_refused_")
    return {
        name.split(".")[0].removeprefix("atlas_refused_"): value
        for name, value in stats.items()
        if name.endswith(".http_local_rate_limit.ok")
    }


def test_an_unknown_name_is_refused_with_a_reason(go_network: AtlasNetwork) -> None:
    net = go_network
    wait_until(lambda: healthy(thanos_query(net)), within=30, what="network up")
    before = refusals(net)
    port = net.obs_ports["thanos"]
    # Envoy 1.36 does not know body_format: it sends the same reason without the name asked.
    names_it = net.envoys["atlas"].version() > (1, 36, 99)
    err = refused(net, f"west-1.sidecars.thanos.atlas.:{port}")
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    asked = "'west-1.sidecars.thanos.atlas'" if names_it else "by the name dialed"
    assert err.details() == (f"atlas: no cluster/replica {asked} (known: east-0, east-1, west-0)")
    # dnssrv+ instead of dnssrvnoa+: Thanos dials the Envoy's IP, and the name is lost.
    ip = thanos_query(net, net.thanos_address, series_timeout="0s")[net.thanos_address]
    assert ip["info_code"] == "Unavailable"
    dialed = f"'{net.obs_ip}'" if names_it else "dialed"
    assert f"':authority' {dialed} is not a sidecar name" in ip["info_error"]
    assert "--endpoint=dnssrvnoa+_grpc._tcp.sidecars.thanos.atlas." in ip["info_error"]
    after = refusals(net)
    assert after["unknown_target"] == before.get("unknown_target", 0) + 1
    assert after["not_a_target"] == before.get("not_a_target", 0) + 1


def test_slow_series_and_idle_connections_survive_grpc_gos_ping_policy(
    go_network: AtlasNetwork,
) -> None:
    """A Series that sends nothing for 90 s completes through the tunnel, and an idle tunnel
    connection to the sidecar lives 3 minutes: grpc-go would answer Envoy's 15 s keepalive
    pings with GOAWAY too_many_pings (after three strikes) and drop both."""
    net = go_network
    if net.api_type != "GRPC":
        pytest.skip("transport behaviour: once is enough (it does not depend on the ADS flavour)")
    wait_until(lambda: healthy(thanos_query(net)), within=30, what="network up")
    east0 = net.sidecars["east-0"]
    west0 = net.sidecars["west-0"]
    assert isinstance(east0, GoSidecar) and isinstance(west0, GoSidecar)
    east_envoy = net.envoys["east"]

    def sidecar_connections() -> dict[str, int]:
        prefix = "cluster.thanos_0.upstream_cx_"
        return {k.removeprefix(prefix): v for k, v in east_envoy.stats(prefix).items()}

    started = time.monotonic()
    slow: dict[str, Any] = {}

    def slow_series() -> None:
        try:
            slow["result"] = series(
                net.thanos_address, net.thanos_authority("west-0"), name="slow", timeout=150
            )
        except grpc.RpcError as err:
            slow["error"] = f"{err.code()}: {err.details()}"

    worker = threading.Thread(target=slow_series)
    worker.start()
    try:
        assert info(net.thanos_address, net.thanos_authority("east-0"))["cluster"] == "east"
        idle_from = sidecar_connections()
        accepted = east0.accepted()
        worker.join(timeout=150)
        assert not worker.is_alive()
        time.sleep(max(0.0, 180 - (time.monotonic() - started)))
        assert info(net.thanos_address, net.thanos_authority("east-0"))["cluster"] == "east"
    finally:
        worker.join(timeout=160)
    assert "error" not in slow, slow.get("error")
    result = slow["result"]
    assert result.frames == 3 and result.seconds >= 90
    assert result.first_labels["cluster"] == "west"
    idle_to = sidecar_connections()
    assert east0.accepted() == accepted, "the sidecar never had to accept a new connection"
    assert idle_to["total"] == idle_from["total"], "Envoy reused its idle connection"
    assert idle_to["close_notify"] == idle_from["close_notify"] == 0, "no GOAWAY received"
    assert idle_to["destroy_remote"] == 0

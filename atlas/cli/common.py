"""What the command groups share: argument sets, settings loading, and the PKI of a daemon.

Only ``atlas serve`` (and ``atlas ca init``) may create a CA: every other command works with
the one that exists, or says where it looked and what to do.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

import yaml

from atlas.config import DEFAULT_NAMESPACE, Settings, settings_from_mapping
from atlas.documents import yaml_problem
from atlas.errors import ConfigError
from atlas.instance import DEFAULT_INSTANCE
from atlas.names import is_hostname, is_ip, parse_uint
from atlas.pki_store import CertificateManager, DirectoryStore

__all__ = [
    "DEFAULT_STATE_DIR",
    "KUBERNETES",
    "Formatter",
    "Parser",
    "add_kube_args",
    "add_source_args",
    "directory_pki",
    "kube_pki",
    "load_settings",
    "package_version",
    "parse_hostport",
    "source_directory",
    "source_value",
    "with_instance",
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


def add_kube_args(p: argparse.ArgumentParser, *, namespace: str | None = DEFAULT_NAMESPACE) -> None:
    """``namespace`` None: the flag overrides the ``--config`` file's, else that applies."""
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    p.add_argument("--kube-context", help="kubeconfig context (default: the current one)")
    p.add_argument(
        "--namespace",
        default=namespace,
        help="the Atlas namespace"
        + ("" if namespace else f" (default: the --config file's, else {DEFAULT_NAMESPACE})"),
    )
    p.add_argument(
        "--instance",
        help="the Atlas installation whose objects to use, when two share the namespace "
        f"(the chart's full name; default: the --config file's, else {DEFAULT_INSTANCE})",
    )


def with_instance(args: argparse.Namespace, settings: Settings) -> Settings:
    """``settings`` with ``--instance`` applied, when given."""
    instance = getattr(args, "instance", None)
    return dataclasses.replace(settings, instance=instance) if instance else settings


def add_source_args(
    p: argparse.ArgumentParser, *, required: bool = True, namespace: str | None = DEFAULT_NAMESPACE
) -> None:
    p.add_argument(
        "--source",
        required=required,
        type=source_value,
        help=f"manifests directory, or '{KUBERNETES}' to use the API server",
    )
    p.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        help="PKI state directory (directory mode): the one the daemon runs with",
    )
    add_kube_args(p, namespace=namespace)


def source_value(value: str) -> str:
    """``kubernetes`` or an existing manifests directory (an argparse type). Anything else
    is an error: a typo must not look like a fleet of zero clusters (Thanos drops every
    endpoint on an empty answer), nor ``kuberentes`` quietly mean a directory (and its CA)."""
    if value in (KUBERNETES, ""):
        return value
    problem = _not_a_source(value)
    if problem:
        raise argparse.ArgumentTypeError(f"{value!r} {problem}")
    return value


def source_directory(value: str) -> Path:
    """A manifests directory that exists."""
    problem = _not_a_source(value)
    if problem:
        raise ConfigError(f"--source {value!r} {problem}")
    return Path(value)


def _not_a_source(value: str) -> str:
    if Path(value).is_dir():
        return ""
    if "/" not in value and difflib.get_close_matches(value, [KUBERNETES], n=1, cutoff=0.6):
        return f"is neither '{KUBERNETES}' nor a directory: did you mean '{KUBERNETES}'?"
    return f"is not a directory (create it with `mkdir -p {value}`, or use '{KUBERNETES}')"


class Parser(argparse.ArgumentParser):
    """Usage errors in one line that says where to read more, exit code 2 as argparse's."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def load_settings(path: str | None) -> Settings:
    """The ``--config`` file's settings; every problem is one line naming the file."""
    if not path:
        return Settings()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path}: cannot read: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(err)}") from None
    return settings_from_mapping({} if data is None else data, source=path)


def parse_hostport(value: str, flag: str, *, listen: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``); ``listen``: HOST must be an IP of this host's kind and
    port 0 (pick one) is allowed."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    low = 0 if listen else 1
    shape = "IP:PORT" if listen else "HOST:PORT"
    if not host or parse_uint(port, low=low, high=65535) is None:
        raise ConfigError(f"{flag} {value!r}: not {shape} (port {low}..65535)")
    if listen and not is_ip(host):
        raise ConfigError(f"{flag} {value!r}: {host!r} is not an IP address (0.0.0.0 for all)")
    if not listen and not is_ip(host) and not is_hostname(host):
        raise ConfigError(f"{flag} {value!r}: {host!r} is not an IP address or a DNS name")
    return host, int(port)


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
    from atlas.pki_kube import KubeSecretStore

    kube = connect(kubeconfig=args.kubeconfig, context=args.kube_context)
    names = with_instance(args, settings).names
    store = KubeSecretStore(kube, args.namespace, names=names)
    if store.load_ca() is None:
        raise ConfigError(
            f"no CA in Secret {args.namespace}/{names.ca_secret}: the Atlas leader creates it "
            "when it starts; check that Atlas runs there (--namespace, --instance, --kube-context)"
        )
    return CertificateManager(store, settings.pki)

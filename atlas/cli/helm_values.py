"""The Helm values ``atlas cluster values`` and ``atlas observability values`` print."""

from __future__ import annotations

import argparse
import sys

from atlas.bootstrap import bootstrap_spec
from atlas.cli.common import parse_hostport
from atlas.config import EnvoySettings, Settings
from atlas.pki_store import CertificateManager
from atlas.values import FORMATS, envoy_values, render

__all__ = ["add_values_args", "print_values"]


def add_values_args(p: argparse.ArgumentParser) -> None:
    envoy = EnvoySettings()
    p.add_argument("--format", choices=FORMATS, default="raw", help="how the values are wrapped")
    p.add_argument(
        "--cert-dir",
        default=envoy.cert_dir,
        help="where the chart mounts the certificates in the Envoy pod",
    )
    p.add_argument(
        "--admin-address",
        default=f"{envoy.admin_address}:{envoy.admin_port}",
        help="HOST:PORT of the Envoy's admin interface",
    )
    p.add_argument(
        "--api-type",
        choices=["GRPC", "DELTA_GRPC"],
        default="GRPC",
        help="state-of-the-world or delta xDS",
    )


def print_values(
    args: argparse.Namespace,
    pki: CertificateManager,
    settings: Settings,
    node: str,
    uri: str,
    ads: tuple[str, int],
    *,
    header: str = "",
) -> int:
    """Issue (or reuse) the node's bootstrap credential and print its Helm values."""
    admin_host, admin_port = parse_hostport(args.admin_address, "--admin-address")
    envoy = EnvoySettings(
        access_log=settings.envoy.access_log,
        admin_address=admin_host,
        admin_port=admin_port,
        cert_dir=args.cert_dir,
    )
    spec = bootstrap_spec(Settings(envoy=envoy), node, ads[0], ads[1], api_type=args.api_type)
    credential = pki.credential(
        f"bootstrap-{node}", uri, server=False, lifetime=settings.pki.bootstrap_lifetime
    )
    values = envoy_values(spec, credential, pki.ca())
    text = render(
        values, args.format, namespace=args.namespace, release="atlas-envoy", header=header
    )
    sys.stdout.write(text)
    return 0

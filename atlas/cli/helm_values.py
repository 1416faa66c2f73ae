"""The Helm values ``atlas cluster values`` and ``atlas observability values`` print."""

from __future__ import annotations

import argparse
import sys

from atlas.bootstrap import bootstrap_spec
from atlas.cli.common import package_version, parse_hostport
from atlas.config import EnvoySettings, Settings
from atlas.pki_store import CertificateManager, bootstrap_name
from atlas.values import (
    DEFAULT_CHART_REPOSITORY,
    FORMATS,
    ChartRef,
    envoy_values,
    key_holders,
    render,
)

__all__ = ["add_values_args", "print_values"]

RELEASE = "atlas-envoy"
"""The Helm release name of a wrapped format's Envoy."""


def add_values_args(p: argparse.ArgumentParser) -> None:
    envoy = EnvoySettings()
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="raw",
        help="raw values for charts/envoy, or wrapped in a k3s/RKE2 HelmChart or a Flux "
        "HelmRepository and HelmRelease",
    )
    p.add_argument(
        "--chart-repository",
        default=DEFAULT_CHART_REPOSITORY,
        help="the Helm repository serving charts/envoy, for the wrapped formats",
    )
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
        "--metrics-port",
        type=int,
        default=envoy.metrics_port,
        help="port of the Envoy's /stats/prometheus and /ready on all addresses (0: none)",
    )
    p.add_argument(
        "--api-type",
        choices=["GRPC", "DELTA_GRPC"],
        default=None,
        help="state-of-the-world or delta xDS (default: GRPC; for the observability Envoy, "
        "the envoy.observability_api_type setting)",
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
    alertmanager_replicas: int | None = None,
) -> int:
    """Issue (or reuse) the node's bootstrap credential and print its Helm values."""
    admin_host, admin_port = parse_hostport(args.admin_address, "--admin-address")
    envoy = EnvoySettings(
        access_log=settings.envoy.access_log,
        admin_address=admin_host,
        admin_port=admin_port,
        metrics_port=args.metrics_port,
        cert_dir=args.cert_dir,
        observability_api_type=settings.envoy.observability_api_type,
    )
    spec = bootstrap_spec(Settings(envoy=envoy), node, ads[0], ads[1], api_type=args.api_type)
    credential = pki.credential(
        bootstrap_name(node), uri, server=False, lifetime=settings.pki.bootstrap_lifetime
    )
    values = envoy_values(spec, credential, pki.ca(), alertmanager_replicas=alertmanager_replicas)
    chart = ChartRef(repository=args.chart_repository, version=package_version())
    text = render(
        values,
        args.format,
        namespace=args.namespace,
        release=RELEASE,
        header=header,
        chart=chart,
    )
    sys.stdout.write(text)
    holders = ", ".join(key_holders(args.format, args.namespace, RELEASE))
    print(
        f"atlas: the Envoy's private key is in {holders}: encrypt it (SOPS, sealed-secrets) "
        "or keep it out of Git",
        file=sys.stderr,
    )
    return 0

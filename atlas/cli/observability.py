"""``atlas observability values``: Helm values for the observability Envoy."""

from __future__ import annotations

import argparse

from atlas.cli.common import DEFAULT_STATE_DIR, Formatter, directory_pki
from atlas.cli.helm_values import add_values_args, print_values
from atlas.config import DEFAULT_ADS_PORT, DEFAULT_NAMESPACE, Settings
from atlas.pki import OBSERVABILITY_URI

__all__ = ["ADS_SERVICE", "add_parser"]

ADS_SERVICE = "atlas-ads.{namespace}.svc.cluster.local"
"""charts/atlas's Service for Atlas's gRPC port (``<release>-ads``, release ``atlas``)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    obs = sub.add_parser("observability", help="the observability Envoy", formatter_class=Formatter)
    osub = obs.add_subparsers(dest="obs_command", required=True, metavar="COMMAND")
    values = osub.add_parser(
        "values",
        help="print Helm values for the observability Envoy",
        description="In Kubernetes the leader keeps them in the Secret <instance>-envoy-values "
        "(atlas-envoy-values for the release atlas).",
        formatter_class=Formatter,
    )
    values.add_argument(
        "--state-dir", default=DEFAULT_STATE_DIR, help="PKI state directory of the daemon"
    )
    values.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="the Atlas namespace")
    add_values_args(values)
    values.add_argument(
        "--ads-address",
        default=None,
        help="Atlas's gRPC address as seen from the observability Envoy (default: the chart's "
        f"Service, {ADS_SERVICE.format(namespace='<namespace>')})",
    )
    values.add_argument("--ads-port", type=int, default=DEFAULT_ADS_PORT, help="Atlas's gRPC port")
    values.set_defaults(func=_values)


def _values(args: argparse.Namespace) -> int:
    settings = Settings()
    pki = directory_pki(args.state_dir, settings)
    ads = (args.ads_address or ADS_SERVICE.format(namespace=args.namespace), args.ads_port)
    return print_values(args, pki, settings, settings.observability_node, OBSERVABILITY_URI, ads)

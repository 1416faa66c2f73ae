"""``atlas serve``: the daemon."""

from __future__ import annotations

import argparse
import dataclasses

from atlas.cli.common import (
    KUBERNETES,
    Formatter,
    add_source_args,
    load_settings,
    parse_hostport,
    with_instance,
)
from atlas.config import (
    DEFAULT_ADS_LISTEN,
    DEFAULT_ADS_PORT,
    DEFAULT_DNS_LISTEN,
    DEFAULT_DNS_PORT,
    DEFAULT_HTTP_LISTEN,
    LOOPBACK,
    NetworkSettings,
    ObservabilityPorts,
    Settings,
    check_settings,
)
from atlas.errors import ConfigError
from atlas.names import is_hostname, is_ip

__all__ = ["add_parser"]

PORTS = ObservabilityPorts()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the daemon (xDS control plane and DNS)",
        description="Serve ADS, DNS and HTTP (metrics, status) from a manifests directory or "
        "from Kubernetes. Creates the CA on first start.",
        formatter_class=Formatter,
    )
    add_source_args(p, namespace=None)
    p.add_argument("--config", help="YAML settings file (ports, addresses, lifetimes)")
    p.add_argument(
        "--envoy-service-ip",
        action="append",
        default=[],
        metavar="IP",
        help="in-cluster address of the observability Envoy, answered in DNS (repeatable; "
        "default: the observability Envoy Service's ClusterIP, else --observability-address)",
    )
    p.add_argument(
        "--observability-address",
        help="where downstream Envoys reach the observability Envoy: their ADS target "
        f"({PORTS.ads}) and their alert relay's ({PORTS.alert_intake}) (default: the config "
        f"file's, {NetworkSettings().observability_address})",
    )
    p.add_argument(
        "--control-plane-address",
        help="HOST:PORT where the observability Envoy reaches Atlas's gRPC port "
        f"(default: the config file's, {LOOPBACK}:{DEFAULT_ADS_PORT})",
    )
    p.add_argument("--ads-listen", default=DEFAULT_ADS_LISTEN, help="gRPC (ADS) HOST:PORT")
    p.add_argument("--identity", help="this replica's name in the leader Lease (default: host-pid)")
    p.add_argument(
        "--control-plane-service",
        help="Atlas's gRPC HOST:PORT as the observability Envoy sees it, for its values "
        "(Kubernetes; default: --control-plane-address)",
    )
    p.add_argument(
        "--ads-insecure",
        action="store_true",
        help="plaintext ADS without client certificates (tests, demos only)",
    )
    p.add_argument(
        "--dns-listen",
        action="append",
        default=None,
        metavar="HOST:PORT",
        help=f"DNS over UDP and TCP (repeatable; default {DEFAULT_DNS_LISTEN}; the container "
        f"uses {DEFAULT_DNS_PORT} too, its Service maps 53)",
    )
    p.add_argument(
        "--http-listen",
        default=DEFAULT_HTTP_LISTEN,
        help="metrics and status HOST:PORT ('' disables)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from atlas.serve.daemon import run as serve
    from atlas.serve.options import ServeOptions

    for address in args.envoy_service_ip:
        if not is_ip(address):
            raise ConfigError(f"--envoy-service-ip {address!r}: not an IP address")
    parse_hostport(args.ads_listen, "--ads-listen", listen=True)
    if args.http_listen:
        parse_hostport(args.http_listen, "--http-listen", listen=True)
    dns_listen = tuple(args.dns_listen or [DEFAULT_DNS_LISTEN])
    for address in dns_listen:
        parse_hostport(address, "--dns-listen", listen=True)
    settings = _settings(args)
    if args.source != KUBERNETES and not args.envoy_service_ip:
        _require_srv_address(settings.network.observability_address)
    return serve(
        ServeOptions(
            source=args.source,
            state_dir=args.state_dir,
            settings=settings,
            dns_addresses=tuple(args.envoy_service_ip),
            ads_listen=args.ads_listen,
            ads_tls=not args.ads_insecure,
            http_listen=args.http_listen,
            dns_listen=dns_listen,
            kubeconfig=args.kubeconfig,
            kube_context=args.kube_context,
            identity=args.identity,
            control_plane_service=args.control_plane_service,
        )
    )


def _settings(args: argparse.Namespace) -> Settings:
    """The ``--config`` file's settings with the flags applied, checked as a whole."""
    settings = load_settings(args.config)
    network = settings.network
    if args.observability_address:
        host = args.observability_address
        if not is_ip(host) and not is_hostname(host):
            raise ConfigError(f"--observability-address {host!r}: not an IP address or a DNS name")
        network = dataclasses.replace(network, observability_address=host)
    if args.control_plane_address:
        host, port = parse_hostport(args.control_plane_address, "--control-plane-address")
        network = dataclasses.replace(network, control_plane_address=host, control_plane_port=port)
    namespace = args.namespace or settings.namespace
    settings = dataclasses.replace(settings, namespace=namespace, network=network)
    settings = with_instance(args, settings)
    check_settings(settings, source=args.config or "flags")
    return settings


def _require_srv_address(observability_address: str) -> None:
    """Every SRV target needs an A/AAAA record for Thanos to dial. In directory mode it is
    ``--envoy-service-ip``, else the observability address when that is an IP: a DNS name
    cannot be answered as an address (and is where other clusters reach the Envoy, not
    necessarily where Thanos Query does), so starting would serve targets that never
    resolve."""
    if is_ip(observability_address):
        return
    raise ConfigError(
        f"--observability-address {observability_address!r} is a DNS name, and the SRV "
        "targets need an IP address to answer: give the observability Envoy's address as "
        "Thanos Query reaches it with --envoy-service-ip IP"
    )

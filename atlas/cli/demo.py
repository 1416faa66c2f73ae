"""``atlas demo``: a whole Atlas network on loopback (see ``atlas.demo``)."""

from __future__ import annotations

import argparse

from atlas.cli.common import Formatter

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run a whole Atlas network on loopback: real Envoys, Prometheus, Alertmanager",
        description="Atlas, the observability Envoy and N downstream clusters (each: Envoy, "
        "Thanos sidecar stand-in, Prometheus, Alertmanager) on their own loopback addresses, "
        "no root needed. Prints what to try; Ctrl-C stops everything.",
        formatter_class=Formatter,
    )
    p.add_argument("--clusters", type=int, default=3, help="downstream clusters to start (1..8)")
    p.add_argument(
        "--churn",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="add one more cluster, then remove it, every SECONDS (0: never)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument(
        "--address-base",
        default="127.77",
        help="the first two octets of the demo's loopback addresses",
    )
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import logging

    from atlas.demo import DemoOptions, run_demo
    from atlas.errors import ConfigError

    logging.getLogger().setLevel(logging.WARNING)  # the demo prints its own progress
    if not 1 <= args.clusters <= 8:
        raise ConfigError(f"--clusters {args.clusters}: must be 1..8")
    if not args.address_base.startswith("127.") or args.address_base.count(".") != 1:
        raise ConfigError(f"--address-base {args.address_base}: must be 127.N (loopback)")
    return run_demo(
        DemoOptions(
            clusters=args.clusters, churn=args.churn, keep=args.keep, base=args.address_base
        )
    )

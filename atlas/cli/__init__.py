"""The ``atlas`` command: this module builds the parser; each command group has its module
(``serve``, ``cluster``, ``observability``, ``ca``), which registers its sub-commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from atlas.cli import ca, cluster, demo, observability, serve, status
from atlas.cli.common import Formatter, package_version
from atlas.errors import AtlasError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="atlas",
        description="Envoy xDS control plane and authoritative DNS for Thanos across clusters.",
        formatter_class=Formatter,
    )
    p.add_argument("--version", action="version", version=f"atlas {package_version()}")
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="logging"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (serve, cluster, observability, ca, status, demo):
        group.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except AtlasError as err:
        print(f"atlas: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``atlas`` command: this module builds the parser; each command group has its module
(``serve``, ``cluster``, ``observability``, ``ca``, ``status``, ``demo``), which registers
its sub-commands.

Exit codes, for every command: 0 done; 2 a usage or configuration error (argparse's own, and
every ``atlas: error:`` about arguments, settings, manifests or files), which running it
again unchanged will not fix; 1 a failure at run time (``serve`` could not listen, or a task
that must not fail did). ``atlas status`` adds its own: 1 degraded, 3 no replica answered.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence

from atlas.cli import ca, cluster, demo, observability, serve, status
from atlas.cli.common import Formatter, Parser, package_version
from atlas.errors import AtlasError, ConfigError

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
"""A failure at run time (a port in use, the API server refused a write)."""
EXIT_CONFIG = 2
"""A usage or configuration error: argparse's code, kept for every error of that kind."""

_LOG_LEVELS = ["debug", "info", "warning", "error"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="atlas",
        description="Envoy xDS control plane and authoritative DNS for Thanos across clusters.",
        formatter_class=Formatter,
    )
    p.add_argument("--version", action="version", version=f"atlas {package_version()}")
    p.add_argument("--log-level", default="info", choices=_LOG_LEVELS, help="logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (serve, cluster, observability, ca, status, demo):
        group.add_parser(sub)
    for command in _commands(p):
        # Global flags also after the command (`atlas serve --log-level debug`); SUPPRESS
        # keeps the top-level value when the flag is not repeated there.
        command.add_argument(
            "--log-level", default=argparse.SUPPRESS, choices=_LOG_LEVELS, help="logging"
        )
    return p


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below ``parser`` that runs a command (the leaves of the tree)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                has_children = any(
                    isinstance(a, argparse._SubParsersAction) for a in child._actions
                )
                if has_children:
                    yield from _commands(child)
                else:
                    yield child


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(args.log_level.upper())  # also where handlers were set up
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"atlas: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except AtlasError as err:
        print(f"atlas: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

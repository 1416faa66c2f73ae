"""``atlas`` with make-before-break turned off, for the test that shows a randomized run
catches it: every type is pushed as the snapshot has it, routes and listeners first, and
nothing is held back or kept for what Envoy still uses.

Run as a script in place of the ``atlas`` console script: ``python broken.py serve ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Set

from xds_server import stream
from xds_server.resources import Resource
from xds_server.snapshot import Snapshot
from xds_server.types import CLUSTER, LISTENER, ROUTE, SECRET


def _as_snapshot_has_it(
    snapshot: Snapshot,
    type_url: str,
    names: Set[str] | None,
    acked: Mapping[str, Mapping[str, Resource]],
) -> Mapping[str, Resource]:
    resources = snapshot.of(type_url)
    return resources if names is None else {n: resources[n] for n in names if n in resources}


stream.ADS_ORDER = (ROUTE, LISTENER, CLUSTER, SECRET)  # type: ignore[misc]
stream.desired = _as_snapshot_has_it

if __name__ == "__main__":
    from atlas.cli import main

    sys.exit(main())

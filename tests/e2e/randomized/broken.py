"""``atlas`` with make-before-break turned off, for the test that shows a randomized run
catches it: every type is pushed as the snapshot has it, routes and listeners first, and
nothing is held back or kept for what Envoy still uses; and clusters and secrets reach Envoy
``LAG`` seconds after the routes that name them, as a busy control plane or a slow link delivers
them. On loopback, without the lag, routes and clusters arrive within a millisecond of each
other and a run catches the broken order only when a call lands in that millisecond (3 runs in
4); the lag makes the broken order as visible as it is on a real network.

Run as a script in place of the ``atlas`` console script: ``python broken.py serve ...``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Set
from typing import Any

from xds_server import server, stream
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


LAG = 0.5


class _LaggingAsyncio:
    """``asyncio`` for the server module, whose ``to_thread`` (through which every push is
    encoded once ``LARGE`` is 0) holds clusters and secrets back for ``LAG`` seconds."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(encode: Callable[[Any], Any], push: Any) -> Any:
        if push.type_url in (CLUSTER, SECRET):
            await asyncio.sleep(LAG)
        return encode(push)


vars(stream).update(ADS_ORDER=(ROUTE, LISTENER, CLUSTER, SECRET), desired=_as_snapshot_has_it)
vars(server).update(LARGE=0, asyncio=_LaggingAsyncio())

if __name__ == "__main__":
    from atlas.cli import main

    sys.exit(main())

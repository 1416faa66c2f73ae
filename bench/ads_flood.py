"""One misbehaving identity against Atlas's ADS server, and what the others notice.

1,000 well-behaved clients (one per cluster, each subscribing to every type and ACKing as Envoy
does) measure the one-cluster change → ACK latency twice: unloaded, then while another process
holds cluster ``c0``'s identity and floods: it opens 1,000 streams at once, again and again, and
sends as many requests as it can (aiming at 10,000 a second) on every stream it is admitted on,
reconnecting whenever one is ended. The server runs with its default limits
(``atlas.config.AdsSettings``), on loopback, plaintext (TLS would cost both phases the
same; the limits do not depend on it).

    python -m bench.ads_flood [--clients 1000] [--changes 100] [--rounds 3]

Prints the p50/p99 of both phases and their ratio, and writes them to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import time
from typing import Any

from atlas.config import AdsSettings, Settings
from bench.xds_scale import Publish, pct, run_clients, topology, wait_settled
from xds_server import metrics
from xds_server.cache import SnapshotCache
from xds_server.collector import tune_for_streams
from xds_server.server import AdsServicer, start_server
from xds_server.status import StatusBoard
from xds_server.types import CLUSTER

ABUSER = "c0"


def run_flooder(port: int, ready: Any, stop: Any, counts: Any) -> None:
    """The abusive client, in its own process at the lowest CPU priority: a remote abuser
    spends its own CPU, so what is measured is what the flood costs the server, not the two
    sharing this machine's 2 cores."""
    os.nice(19)
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    async def stream(channel: grpc.aio.Channel) -> None:
        started = time.monotonic()

        async def requests() -> Any:
            yield discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id=ABUSER), type_url=CLUSTER)
            sent = 0
            while not stop.is_set():
                for _ in range(100):
                    yield discovery_pb2.DiscoveryRequest(type_url=CLUSTER, response_nonce="x")
                sent += 100
                counts[1] += 100
                # Aim at 10,000 a second; the server's flow control decides what it takes.
                await asyncio.sleep(max(0.0, started + sent / 10_000 - time.monotonic()))

        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        try:
            async for _ in stub.StreamAggregatedResources(requests()):
                pass
        except grpc.aio.AioRpcError:
            pass

    async def main() -> None:
        options = [("grpc.use_local_subchannel_pool", 1)]  # 20 connections, not one shared
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(20)
        ]
        ready.set()
        while not stop.is_set():
            counts[0] += 1000
            tasks = [asyncio.create_task(stream(channels[i % 20])) for i in range(1000)]
            # Refused streams end at once; the admitted ones flood until ended, then all again.
            await asyncio.wait(tasks, timeout=30)
            for task in tasks:
                task.cancel()
        for channel in channels:
            await channel.close()

    with contextlib.suppress(asyncio.CancelledError):  # stopped mid-stream: nothing to report
        asyncio.run(main())


NO_LIMITS = AdsSettings(
    streams_per_node=10**6, requests_per_second=1e9, request_burst=10**9, queued_requests=10**9
)


async def measure(
    n: int, changes: int, flood: bool, limits: AdsSettings | None = None
) -> dict[str, Any]:
    settings = Settings()
    cache, board = SnapshotCache(), StatusBoard()
    servicer = AdsServicer(
        cache, board, observability_node="atlas", check_identity=False, limits=limits
    )
    tune_for_streams()  # as the daemon does
    server, port = await start_server(servicer, "127.0.0.1:0")
    nodes = ["atlas", *(f"c{i}" for i in range(n))]
    bundle = b"BUNDLE" * 100
    publish_topology = Publish(cache, nodes, settings)

    def publish(bump: int) -> None:
        publish_topology(topology(n, bump=bump), bundle)

    publish(-1)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    swarm = ctx.Process(target=run_clients, args=(port, nodes[:1] + nodes[2:], ready, stop))
    swarm.start()
    counts = ctx.Array("l", 2)
    flooder = None
    refused = metrics.REFUSED.labels("stream_limit")._value.get()
    throttled = metrics.THROTTLED._value.get()
    try:
        await asyncio.to_thread(ready.wait, 60)
        others = [node for node in nodes if node != ABUSER]
        await wait_settled(cache, board, others, limit=120)
        if flood:
            flood_ready = ctx.Event()
            flooder = ctx.Process(target=run_flooder, args=(port, flood_ready, stop, counts))
            flooder.start()
            await asyncio.to_thread(flood_ready.wait, 60)
            await asyncio.sleep(2.0)  # the flood under way before the first change
        started = time.monotonic()
        samples = []
        for k in range(changes):
            bump = 1 + k % (n - 1)  # never the abuser's own cluster
            start = time.perf_counter()
            publish(bump)
            await wait_settled(cache, board, ["atlas", f"c{bump}"])
            samples.append(time.perf_counter() - start)
            await asyncio.sleep(0.05)
        lasted = time.monotonic() - started
    finally:
        stop.set()
        for process in (swarm, flooder):
            if process is not None:
                process.join(10)
                if process.is_alive():
                    process.kill()
        await servicer.shutdown(timeout=2.0)
        await server.stop(None)
    return {
        "samples": samples,
        "streams": counts[0],
        "requests": counts[1],
        "seconds": lasted,
        "refused": metrics.REFUSED.labels("stream_limit")._value.get() - refused,
        "throttled": metrics.THROTTLED._value.get() - throttled,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    phases: dict[str, list[dict[str, Any]]] = {"quiet": [], "loud": [], "open": []}
    for _ in range(args.rounds):  # interleaved, so a slow minute of the machine hits all three
        phases["quiet"].append(asyncio.run(measure(args.clients, args.changes, flood=False)))
        phases["loud"].append(asyncio.run(measure(args.clients, args.changes, flood=True)))
        phases["open"].append(
            asyncio.run(measure(args.clients, args.changes, flood=True, limits=NO_LIMITS))
        )

    def figures(runs: list[dict[str, Any]]) -> tuple[float, float, list[float]]:
        p50 = statistics.median(statistics.median(r["samples"]) for r in runs) * 1000
        p99s = [pct(r["samples"], 0.99) * 1000 for r in runs]
        return p50, statistics.median(p99s), p99s

    q50, q99, _ = figures(phases["quiet"])
    rows = [f"| unloaded | {q50:.0f} ms | {q99:.0f} ms | — |"]
    for label, key in (
        (f"while `{ABUSER}` floods", "loud"),
        (f"while `{ABUSER}` floods, limits off (for comparison)", "open"),
    ):
        p50, p99, p99s = figures(phases[key])
        spread = ", ".join(f"{v:.0f}" for v in p99s)
        rows.append(f"| {label} | {p50:.0f} ms | {p99:.0f} ms ({spread}) | {p99 / q99:.2f}x |")
    loud = phases["loud"][-1]
    flood_rate = loud["requests"] / loud["seconds"]
    body = "\n".join(
        [
            f"{args.clients:,} well-behaved clients; one-cluster change → ACK of the two nodes "
            f"it affects, {args.changes} changes per phase and round, {args.rounds} rounds: "
            "medians over the rounds (each round's p99 in brackets).",
            "",
            "| phase | p50 | p99 | p99 ratio to unloaded |",
            "|---|---|---|---|",
            *rows,
            "",
            f"The flooder opened {loud['streams']:,} streams at once over 20 connections: "
            "the server admits 3 per node, each connection carries at most 8 streams at a "
            f"time (the rest wait in the client), and it refused {loud['refused']:,.0f} in the "
            f"{loud['seconds']:.1f} s measured. On its admitted streams it queued "
            f"{loud['requests']:,} requests ({flood_rate:,.0f}/s); the server read them at "
            f"20/s per stream after a burst of 200 ({loud['throttled']:,.0f} made to wait), "
            "leaving the rest to HTTP/2 flow control, and ends such a stream after 10 s "
            "over its rate. Target (issue 14): the p99 while flooded within 2x the unloaded "
            "one. The clients share the 2 cores with the server in both phases; the flooding "
            "process runs at nice 19 (a remote abuser spends its own CPU).",
        ]
    )
    print(body)
    from bench.report import write_section

    write_section("ADS under a flooding identity (bench/ads_flood.py)", body)


if __name__ == "__main__":
    main()

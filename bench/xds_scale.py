"""xDS at scale: N simulated ADS clients over N clusters.

Prints and writes to docs/BENCHMARKS.md:
* change → every affected client's ACK (p50/p99), for a one-cluster change (2 nodes affected)
  and a trust-bundle change (all N+1 nodes), with N = 100 and 1,000 clients;
* snapshot build time, cold, for 1,000 and 10,000 clusters, and for a one-cluster change
  (the previous build handed in, collector paused: as the daemon's publisher builds);
* the source's parse time for a one-Service change at 10,000 Services, with and without
  ``ParseMemo``;
* the server's RSS with N = 1,000 clients connected.

Build and parse times are measured in a child process, so the server's RSS is its own.

The clients run in a child process (their own event loop and core), each one gRPC stream with
its own node id that subscribes to all four types and ACKs every response, as Envoy does.

    python -m bench.xds_scale [--clients 100,1000] [--changes 20] [--builds 1000,10000]

(``--builds 100000`` measures the builder alone at 100,000 clusters: about 3 GB.)
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import functools
import gc
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

from atlas.config import Settings
from atlas.manifests import ParseMemo, parse_services
from atlas.model import DownstreamCluster, Topology
from xds_server.builders import Build, NodeCredentials, build, clear_caches
from xds_server.cache import SnapshotCache
from xds_server.collector import collector_paused, tune_for_streams
from xds_server.server import AdsServicer, start_server
from xds_server.status import StatusBoard
from xds_server.types import ADS_ORDER, CLUSTER, LISTENER, ROUTE, SECRET

ROUTES = {"atlas": ["thanos", "prometheus-ui", "alertmanager-ui", "alert-intake"]}
DOWNSTREAM_ROUTES = ["thanos", "prometheus", "alertmanager", "alert-relay"]


@functools.cache
def _clusters(n: int) -> tuple[DownstreamCluster, ...]:
    return tuple(
        DownstreamCluster(f"c{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", replicas=2)
        for i in range(n)
    )


def topology(n: int, bump: int = -1) -> Topology:
    """``n`` clusters; cluster ``bump`` has a third replica.

    Unchanged clusters are the same objects from one topology to the next, as the sources
    hand them out (``watchers.source.LastGood``).
    """
    clusters = list(_clusters(n))
    if 0 <= bump < n:
        clusters[bump] = dataclasses.replace(clusters[bump], replicas=3)
    return Topology(tuple(clusters))


_CREDS: dict[tuple[str, bytes], NodeCredentials] = {}


def creds(nodes: list[str], bundle: bytes) -> dict[str, NodeCredentials]:
    """Certificate-sized stand-ins; the same objects while unchanged, as NodeIdentities does."""
    out = {}
    for n in nodes:
        key = (n, bundle)
        if key not in _CREDS:
            _CREDS[key] = NodeCredentials(b"C" * 700 + n.encode(), b"K" * 240 + n.encode(), bundle)
        out[n] = _CREDS[key]
    return out


class Publish:
    """What SnapshotPublisher does, without sources: an incremental build with the previous
    one handed in, the result frozen, then only the changed nodes into the cache."""

    def __init__(self, cache: SnapshotCache, nodes: list[str], settings: Settings) -> None:
        self.cache, self.nodes, self.settings = cache, nodes, settings
        self.last: Build | None = None

    def __call__(self, topo: Topology, bundle: bytes) -> None:
        with collector_paused():
            result = build(topo, self.settings, creds(self.nodes, bundle), self.last)
        gc.freeze()  # what came since the build froze its own, before the swap (as the publisher)
        if self.last is not None:
            self.cache.apply(result.snapshots, result.changed, result.removed)
        else:
            self.cache.replace_all(result.snapshots)
        self.last = result


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- client swarm (child process) ----------------------------------------------------------
def run_clients(port: int, nodes: list[str], ready: Any, stop: Any) -> None:
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    async def client(node: str) -> None:
        names = {
            CLUSTER: [],
            LISTENER: [],
            ROUTE: ROUTES.get(node, DOWNSTREAM_ROUTES),
            SECRET: ["identity", "trust-bundle"],
        }
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for i, type_url in enumerate(ADS_ORDER):
            queue.put_nowait(
                discovery_pb2.DiscoveryRequest(
                    node=base_pb2.Node(id=node) if i == 0 else None,
                    type_url=type_url,
                    resource_names=names[type_url],
                )
            )

        async def requests() -> Any:
            while True:
                yield await queue.get()

        # Its own connection, as each Envoy has (channels to one target share one otherwise).
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            async for response in stub.StreamAggregatedResources(requests()):
                queue.put_nowait(
                    discovery_pb2.DiscoveryRequest(
                        type_url=response.type_url,
                        version_info=response.version_info,
                        response_nonce=response.nonce,
                        resource_names=names[response.type_url],
                    )
                )

    async def main() -> None:
        tasks = [asyncio.create_task(client(n)) for n in nodes]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()

    asyncio.run(main())


# -- server side ---------------------------------------------------------------------------
def settled(cache: SnapshotCache, board: StatusBoard, nodes: list[str]) -> bool:
    for node in nodes:
        snap = cache.snapshot(node)
        st = board.get(node)
        if snap is None or st is None:
            return False
        for type_url in ADS_ORDER:
            if st.acked.get(type_url) != snap.versions[type_url]:
                return False
    return True


async def wait_settled(
    cache: SnapshotCache, board: StatusBoard, nodes: list[str], limit: float = 60
) -> float:
    start = time.perf_counter()
    while not settled(cache, board, nodes):
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"clients did not ACK within {limit}s")
        await asyncio.sleep(0.001)
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency_run(n: int, changes: int) -> dict[str, Any]:
    tune_for_streams()  # as the daemon does
    settings = Settings()
    cache, board = SnapshotCache(), StatusBoard()
    server, port = await start_server(
        AdsServicer(cache, board, observability_node="atlas", check_identity=False), "127.0.0.1:0"
    )
    nodes = ["atlas", *(f"c{i}" for i in range(n))]
    bundle = b"BUNDLE-0" * 100

    publish = Publish(cache, nodes, settings)

    publish(topology(n), bundle)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    swarm = ctx.Process(target=run_clients, args=(port, nodes, ready, stop), daemon=True)
    swarm.start()
    try:
        await asyncio.to_thread(ready.wait, 60)
        connect = await wait_settled(cache, board, nodes, limit=120)
        one, everyone = [], []
        for k in range(changes):
            start = time.perf_counter()
            publish(topology(n, bump=k % n), bundle)
            await wait_settled(cache, board, ["atlas", f"c{k % n}"])
            one.append(time.perf_counter() - start)
        for k in range(max(3, changes // 4)):
            bundle = f"BUNDLE-{k + 1}".encode() * 100
            start = time.perf_counter()
            publish(topology(n, bump=(changes - 1) % n), bundle)
            await wait_settled(cache, board, nodes, limit=120)
            everyone.append(time.perf_counter() - start)
        rss = rss_mb()
    finally:
        stop.set()
        swarm.join(10)
        if swarm.is_alive():
            swarm.kill()
        await server.stop(None)
    return {"n": n, "connect": connect, "one": one, "all": everyone, "rss": rss}


def build_times(sizes: tuple[int, ...] = (1000, 10000)) -> list[tuple[str, float]]:
    """Timed as the daemon runs a build: collector paused, previous build handed in."""
    settings = Settings()
    rows = []
    for n in sizes:
        topo = topology(n)
        node_creds = creds(["atlas", *topo.cluster_names], b"B" * 600)
        samples = []
        for _ in range(3):
            clear_caches()
            gc.collect()
            start = time.perf_counter()
            with collector_paused():
                first = build(topo, settings, node_creds)
            samples.append(time.perf_counter() - start)
        rows.append((f"full build, {n:,} clusters (cold)", statistics.median(samples)))
        samples = []
        previous = first
        gc.freeze()
        for k in range(9):
            changed = topology(n, bump=k)  # the watcher's work, not the builder's: untimed
            start = time.perf_counter()
            with collector_paused():
                previous = build(changed, settings, node_creds, previous)
            samples.append(time.perf_counter() - start)
            gc.freeze()
        rows.append((f"one-cluster change, {n:,} clusters", statistics.median(samples)))
        del first, previous
        gc.unfreeze()
    return rows


def service(i: int, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"c{i}",
            "namespace": "monitoring",
            "labels": {"goatlas.io/cluster": "true", "goatlas.io/replicas": str(replicas)},
        },
        "spec": {"externalIPs": [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"]},
    }


def parse_times() -> list[tuple[str, float]]:
    """The source's share of a one-Service change at 10,000 Services: parsing them."""
    objects = [(f"kube:c{i}", service(i)) for i in range(10000)]
    rows = []
    for label, memo in (("re-parsing all", None), ("ParseMemo, as the sources do", ParseMemo())):
        parse_services(objects, memo=memo)
        samples = []
        for k in range(5):
            objects[k] = (objects[k][0], service(k, replicas=3))
            start = time.perf_counter()
            parse_services(objects, memo=memo)
            samples.append(time.perf_counter() - start)
        label = f"one-Service change, 10,000 Services: parse ({label})"
        rows.append((label, statistics.median(samples)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="100,1000")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--builds", default="1000,10000", help="cluster counts to build")
    args = parser.parse_args()
    sizes = tuple(int(x) for x in args.builds.split(",") if x)
    lines = ["| build | median |", "|---|---|"]
    # In a child process, so the server's RSS below is not inflated by the 10,000-cluster heap.
    with concurrent.futures.ProcessPoolExecutor(1, multiprocessing.get_context("spawn")) as pool:
        rows = pool.submit(build_times, sizes).result() + pool.submit(parse_times).result()
    for label, seconds in rows:
        lines.append(f"| {label} | {seconds * 1000:.0f} ms |")
        print(f"{label}: {seconds * 1000:.0f} ms")
    lines += [
        "",
        "| clients (= clusters + 1) | initial sync | one-cluster change → ACK p50 / p99 | "
        "trust-bundle change (all nodes) → ACK p50 / p99 | server RSS |",
        "|---|---|---|---|---|",
    ]
    for n in (int(x) for x in args.clients.split(",") if x):
        clear_caches()
        gc.collect()
        r = asyncio.run(latency_run(n, args.changes))
        one_p50 = statistics.median(r["one"]) * 1000
        row = (
            f"| {n + 1:,} | {r['connect'] * 1000:.0f} ms | {one_p50:.0f} / "
            f"{pct(r['one'], 0.99) * 1000:.0f} ms | {statistics.median(r['all']) * 1000:.0f} / "
            f"{pct(r['all'], 0.99) * 1000:.0f} ms | {r['rss']:.0f} MB |"
        )
        lines.append(row)
        print(row)
    lines += [
        "",
        "Targets (issue 3): one-change ACK p99 < 200 ms at 1,000; build < 1 s at 10,000, "
        "< 50 ms for one change; RSS < 300 MB at 1,000. The server and the client swarm share "
        "the machine's 2 cores; the RSS includes the warm builder caches.",
    ]
    from bench.report import write_section

    write_section("xDS scale (bench/xds_scale.py)", "\n".join(lines))


if __name__ == "__main__":
    main()

"""A fleet of Envoy-like ADS clients against one Atlas replica: connect, changes, restart storm.

The clients are ``ads-swarm`` (tests/go, built by tests/prepare.sh): each node is one gRPC
stream on its own TCP connection, from a loopback address of its own (as each Envoy has its
pod's), with Envoy's HTTP/2 windows; it subscribes in Envoy's order (CDS, then SDS and LDS,
then RDS), ACKs as Envoy does, opens no second connection while its stream lives (grpc-go
would on a GOAWAY; Envoy does not), and reconnects with Envoy's backoff for xDS streams
telling the server what it holds. They are spread over several processes that share the
machine's 2 cores with the server; the observability node has a process of its own, as the
observability Envoy does.

Measured, per protocol (SotW, delta) and fleet size N (clusters; N + 1 nodes with the
observability node):

* cold connect: all N + 1 clients start at once with nothing; time until every node has ACKed
  its current versions of all four types;
* one-cluster change → both affected nodes ACK (p50/p99), and trust-bundle change → all N + 1
  ACK;
* the server's RSS;
* reconnect storm: a second server (the replica taking over, in its own process) listens on
  the same port with the same snapshots; the first stops listening and every client's
  connection drops at once (a node lost, a partition). Every client reconnects together
  (after Envoy's 0-500 ms first backoff) holding the current versions: time until all are
  synced with the new replica, failed streams, and responses and resources re-sent (which
  should be none), the new replica's CPU per stream, and the CPU of each part during the
  storm (the new replica, the swarm, the old replica letting its streams go) with the share
  of the machine's two cores that was busy;
* CPU seconds of the server and of the swarm over the whole run, and the server's cost per
  stream: per reconnecting stream (the storm) and per push and its ACK (the trust-bundle
  changes, their builds excluded).

    python -m bench.xds_storm [--clients 1000,10000] [--protocols sotw,delta] [--procs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atlas.config import Settings
from bench.cpu import machine_cpu, process_cpu, self_cpu
from bench.xds_scale import Publish, creds, pct, rss_mb, topology
from xds_server.builders import build
from xds_server.cache import SnapshotCache
from xds_server.collector import tune_for_streams
from xds_server.server import AdsServicer, start_server
from xds_server.status import StatusBoard
from xds_server.types import ADS_ORDER

VERBOSE = bool(os.environ.get("ATLAS_BENCH_VERBOSE"))
SWARM = Path(os.environ.get("ATLAS_GO_HOME", Path.home() / ".cache" / "atlas-go")) / "bin"


class Swarm:
    """``procs`` ads-swarm processes holding ``nodes`` between them, and one more for the
    first node (the observability Envoy's, a process of its own as in a real fleet)."""

    def __init__(self, port: int, nodes: list[str], procs: int, delta: bool) -> None:
        binary = SWARM / "ads-swarm"
        if not binary.is_file():
            raise SystemExit(f"{binary} is missing: run `bash tests/go/build.sh`")
        groups = [nodes[:1]] + [nodes[1 + k :: procs] for k in range(procs)]
        self.procs = [
            subprocess.Popen(
                [
                    str(binary),
                    f"-server=127.0.0.1:{port}",
                    f"-nodes={','.join(group)}",
                    f"-delta={'true' if delta else 'false'}",
                    f"-seed={k * 100_000}",
                    f"-sources=127.{128 + k}.0.0",  # 65,534 addresses each
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k, group in enumerate(groups)
            if group
        ]

    def report(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for p in self.procs:
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write("report\n")
            p.stdin.flush()
            for key, value in json.loads(p.stdout.readline()).items():
                if key == "reasons":
                    for reason, count in value.items():
                        total[f"failed {reason}"] = total.get(f"failed {reason}", 0) + count
                else:
                    total[key] = total.get(key, 0) + value
        return total

    def drop(self) -> None:
        """Every client's connection closes at once; each reconnects with Envoy's backoff."""
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("drop\n")
            p.stdin.flush()

    def cpu_seconds(self) -> float:
        return sum(process_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError):
                assert p.stdin is not None
                p.stdin.write("quit\n")
                p.stdin.flush()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Settle:
    """Waits until nodes have ACKed their current snapshot.

    The check runs on the server's own event loop, so it must not be what is measured: only
    the unsettled are re-checked, and the pause between sweeps is at least ``SPACING`` times
    the last sweep (a sweep over 10,000 nodes takes about 25 ms), which keeps the checking
    under a tenth of the loop. The last nodes, a short sweep, are checked every ``poll``.
    """

    SPACING = 10

    def __init__(
        self, cache: SnapshotCache, board: StatusBoard, fleet: Swarm | None = None
    ) -> None:
        self.cache, self.board, self.fleet = cache, board, fleet

    def done(self, node: str) -> bool:
        snap, st = self.cache.snapshot(node), self.board.get(node)
        if snap is None or st is None:
            return False
        return all(st.acked.get(t) == snap.versions[t] for t in ADS_ORDER)

    async def wait(self, nodes: list[str], limit: float, poll: float = 0.002) -> float:
        start = time.perf_counter()
        pending = list(nodes)
        shown = start
        while pending:
            swept = time.perf_counter()
            pending = [n for n in pending if not self.done(n)]
            if not pending:
                break
            pause = max(poll, self.SPACING * (time.perf_counter() - swept))
            if self.fleet is not None and time.perf_counter() - shown > 5 and VERBOSE:
                shown = time.perf_counter()
                print(f"  {shown - start:.0f} s: {len(pending)} not synced; {self.fleet.report()}")
            if time.perf_counter() - start > limit:
                raise TimeoutError(f"{len(pending)} of {len(nodes)} nodes not synced in {limit}s")
            await asyncio.sleep(pause)
        return time.perf_counter() - start


@contextlib.contextmanager
def swarm(port: int, nodes: list[str], procs: int, delta: bool) -> Iterator[Swarm]:
    s = Swarm(port, nodes, procs, delta)
    try:
        yield s
    finally:
        s.stop()


async def run(n: int, protocol: str, procs: int, changes: int) -> dict[str, Any]:
    tune_for_streams()  # as the daemon does
    settings = Settings()
    cache = SnapshotCache()
    nodes = ["atlas", *(f"c{i}" for i in range(n))]
    bundle = b"BUNDLE-0" * 100
    publish = Publish(cache, nodes, settings)

    async def serve(port: int = 0) -> tuple[Any, AdsServicer, StatusBoard, int]:
        board = StatusBoard()
        servicer = AdsServicer(cache, board, observability_node="atlas", check_identity=False)
        server, bound = await start_server(servicer, f"127.0.0.1:{port}")
        return server, servicer, board, bound

    publish(topology(n), bundle)
    server, servicer, board, port = await serve()
    cpu0 = self_cpu()
    result: dict[str, Any] = {"n": n, "protocol": protocol}
    limit = 60 + n / 100
    try:
        with swarm(port, nodes, procs, protocol == "delta") as fleet:
            result["connect"] = await Settle(cache, board, fleet).wait(nodes, limit, poll=0.05)
            result["connect_report"] = fleet.report()
            one, everyone = [], []
            settle = Settle(cache, board)
            for k in range(changes):
                start = time.perf_counter()
                publish(topology(n, bump=k % n), bundle)
                await settle.wait(["atlas", f"c{k % n}"], limit)
                one.append(time.perf_counter() - start)
            pushing = 0.0  # the server's CPU for the pushes and ACKs alone, not the builds
            for k in range(3):
                bundle = f"BUNDLE-{k + 1}".encode() * 100
                start = time.perf_counter()
                publish(topology(n, bump=(changes - 1) % n), bundle)
                cpu = self_cpu()
                await settle.wait(nodes, limit)
                pushing += self_cpu() - cpu
                everyone.append(time.perf_counter() - start)
            result |= {"one": one, "all": everyone, "rss": rss_mb()}
            result["push_cpu"] = pushing / (3 * len(nodes))

            # The replica that takes over is already listening, in its own process with the
            # same snapshots (SO_REUSEPORT, as gRPC sets it: the kernel hands new connections
            # to whichever listener is open); then this one ends every stream, as on SIGTERM.
            ctx = multiprocessing.get_context("spawn")
            here, there = ctx.Pipe()
            bump = (changes - 1) % n
            child = ctx.Process(target=successor, args=(n, bump, bundle, port, limit, there))
            child.start()
            try:
                await asyncio.to_thread(here.recv)  # listening
                before = fleet.report()
                # This replica stops listening (its streams stay), then every connection
                # drops at once, as when a replica's node dies or the network partitions:
                # all Envoys reconnect together (Envoy's first backoff, 0-500 ms), to the
                # replica that is listening. (A graceful SIGTERM ends streams one by one,
                # as fast as the old replica's loop can, which spreads the storm out.)
                stopping = asyncio.create_task(server.stop(30))
                await asyncio.sleep(0.2)
                swarm_cpu, machine, old_cpu = fleet.cpu_seconds(), machine_cpu(), self_cpu()
                here.send(time.time())
                fleet.drop()
                storm = await asyncio.to_thread(here.recv)
                storm["storm_cpu_swarm"] = fleet.cpu_seconds() - swarm_cpu
                storm["storm_cpu_old"] = self_cpu() - old_cpu
                busy, elapsed = (b - a for a, b in zip(machine, machine_cpu(), strict=True))
                storm["storm_busy"] = busy / elapsed  # of all the machine's cores
                await asyncio.sleep(1)  # anything sent late would show in the counts
                after = fleet.report()
                here.send("stop")
                child.join(30)
                await servicer.shutdown(1)
                await stopping
            finally:
                if child.is_alive():
                    child.kill()
            result |= storm
            result["restart_delta"] = {k: after[k] - before.get(k, 0) for k in after}
            result["failures_up"] = after["failures"] - before["failures"]
            result["failures_up_why"] = {
                k: after[k] - before.get(k, 0) for k in after if k.startswith("failed ")
            }
            result["cpu_server"] = self_cpu() - cpu0
            result["cpu_swarm"] = fleet.cpu_seconds()
    finally:
        await servicer.shutdown(2)
        await server.stop(None)
    return result


@contextlib.contextmanager
def collector_pauses() -> Iterator[list[float]]:
    """The cyclic collector's pauses (seconds) while the block runs: each holds the loop."""
    pauses: list[float] = []
    began = [0.0]

    def note(phase: str, _: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(note)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(note)


def successor(n: int, bump: int, bundle: bytes, port: int, limit: float, conn: Any) -> None:
    """The replica that takes the fleet over: serves the same snapshots on ``port``, and
    reports how long after the old one began stopping every node was synced with it."""

    async def main() -> None:
        tune_for_streams()
        nodes = ["atlas", *(f"c{i}" for i in range(n))]
        cache = SnapshotCache()
        cache.replace_all(build(topology(n, bump=bump), Settings(), creds(nodes, bundle)).snapshots)
        gc.freeze()
        board = StatusBoard()
        servicer = AdsServicer(cache, board, observability_node="atlas", check_identity=False)
        server, _ = await start_server(servicer, f"127.0.0.1:{port}")
        conn.send("listening")
        started = await asyncio.to_thread(conn.recv)
        cpu = self_cpu()
        with collector_pauses() as pauses:
            await Settle(cache, board).wait(nodes, limit, poll=0.05)
        conn.send(
            {
                "restart": time.time() - started,
                "storm_cpu": self_cpu() - cpu,
                "storm_rss": rss_mb(),
                "storm_gc_max": max(pauses, default=0.0),
            }
        )
        await asyncio.to_thread(conn.recv)
        await servicer.shutdown(5)
        await server.stop(None)

    asyncio.run(main())


def _child(n: int, protocol: str, procs: int, changes: int, conn: Any) -> None:
    conn.send(asyncio.run(run(n, protocol, procs, changes)))


def in_child(n: int, protocol: str, procs: int, changes: int) -> dict[str, Any]:
    """One fleet size and protocol in a process of its own, so that its RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_child, args=(n, protocol, procs, changes, there))
    child.start()
    try:
        return dict(here.recv())
    finally:
        child.join(60)
        if child.is_alive():
            child.kill()


def row(r: dict[str, Any]) -> str:
    ms = 1000
    d = r["restart_delta"]
    return (
        f"| {r['protocol']} | {r['n'] + 1:,} | {r['connect']:.1f} s | "
        f"{statistics.median(r['one']) * ms:.0f} / {pct(r['one'], 0.99) * ms:.0f} ms | "
        f"{statistics.median(r['all']) * ms:.0f} / {max(r['all']) * ms:.0f} ms | "
        f"{r['rss']:.0f} MB | {r['restart']:.1f} s | {r['storm_gc_max'] * ms:.0f} ms | "
        f"{r['failures_up']} | "
        f"{d['responses']} / {d['resources']} | "
        f"{r['cpu_server']:.0f} s / {r['cpu_swarm']:.0f} s | "
        f"{r['storm_cpu']:.1f} / {r['storm_cpu_swarm']:.1f} / {r['storm_cpu_old']:.1f} s, "
        f"{r['storm_busy']:.0%} | "
        f"{r['storm_cpu'] / (r['n'] + 1) * 1000:.2f} ms | {r['push_cpu'] * 1000:.2f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1000,10000")
    parser.add_argument("--protocols", default="sotw,delta")
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines = [
        "| protocol | nodes | cold connect, all synced | one-cluster change → ACK p50 / p99 | "
        "trust bundle → all ACK, median / max | server RSS | restart storm, all synced | "
        "longest collector pause (storm) | failed streams (storm) | "
        "responses / resources re-sent (storm) | "
        "CPU server / swarm (whole run) | storm CPU: new replica / swarm / old replica, "
        "machine busy | new replica's CPU per reconnecting stream | "
        "server CPU per push + ACK (trust bundle, builds excluded) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol in args.protocols.split(","):
        for n in (int(x) for x in args.clients.split(",")):
            r = in_child(n, protocol, args.procs, args.changes)
            print(json.dumps({k: v for k, v in r.items() if k not in ("one", "all")}))
            lines.append(row(r))
            print(lines[-1], flush=True)
    if args.no_write:
        return
    from bench.report import write_section

    write_section("xDS reconnect storm (bench/xds_storm.py)", "\n".join(lines))


if __name__ == "__main__":
    main()

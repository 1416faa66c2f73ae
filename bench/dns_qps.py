"""DNS throughput: Atlas against Knot DNS serving the same zone, measured in the same run.

dnsperf (Debian) sends the same SRV query file to each server for the same time; the script
prints both query rates and their ratio, and writes them to docs/BENCHMARKS.md. Atlas runs
as ``atlas serve`` (the real daemon, manifests directory source); Knot from Debian's knot.

    python -m bench.dns_qps [--seconds 10] [--clusters 10]

Needs: apt-get install dnsperf knot
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from atlas.demo.processes import wait_for
from atlas.model import DownstreamCluster, Topology
from bench.report import write_section
from dns_server.zone import AAAA, NS, SOA, SRV, A, build_zone

ROOT = Path(__file__).resolve().parent.parent

ENVOY_IP = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port = int(tcp.getsockname()[1])
        udp.bind(("127.0.0.1", port))
        return port


def fleet(n: int) -> Topology:
    return Topology(
        tuple(DownstreamCluster(f"c{i:03d}", "192.0.2.1", replicas=2) for i in range(n))
    )


def zone_file(topology: Topology) -> str:
    zone = build_zone(topology, addresses=[ENVOY_IP], serial=1)
    lines = ["$ORIGIN atlas.", "$TTL 30"]
    render = {
        SOA: lambda d: " ".join(str(x) for x in d),
        NS: lambda d: str(d[0]),
        A: lambda d: str(d[0]),
        AAAA: lambda d: str(d[0]),
        SRV: lambda d: " ".join(str(x) for x in d),
    }
    names = {SOA: "SOA", NS: "NS", A: "A", AAAA: "AAAA", SRV: "SRV"}
    for name, types in sorted(zone.records.items()):
        for rtype, records in sorted(types.items()):
            for r in records:
                lines.append(f"{name} {r.ttl} IN {names[rtype]} {render[rtype](r.data)}")
    return "\n".join(lines) + "\n"


def queries(n: int) -> str:
    names = ["_grpc._tcp.sidecars.thanos.atlas."]
    names += [f"_grpc._tcp.c{i:03d}.sidecars.thanos.atlas." for i in range(n)]
    return "".join(f"{name} SRV\n" for name in names)


def dnsperf(port: int, query_file: Path, seconds: int) -> float:
    out = subprocess.run(
        [
            "dnsperf",
            "-s",
            "127.0.0.1",
            "-p",
            str(port),
            "-d",
            str(query_file),
            "-l",
            str(seconds),
            "-c",
            "8",
            "-q",
            "200",
            "-t",
            "2",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if match is None:
        raise RuntimeError(out)
    print(f"  dnsperf: {match.group(1)} qps, lost {lost.group(1) if lost else '?'}")
    return float(match.group(1))


def wait_dns(port: int) -> None:
    def answers() -> bool:
        argv = ["dig", "@127.0.0.1", "-p", str(port), "+time=1", "+tries=1"]
        argv += ["_grpc._tcp.sidecars.thanos.atlas.", "SRV"]
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        return "status: NOERROR" in out

    wait_for(answers, within=20, what=f"a NOERROR answer on port {port}", interval=0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=10)
    args = parser.parse_args()
    for tool in ("dnsperf", "knotd", "dig"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install dnsperf knot bind9-dnsutils")
    topo = fleet(args.clusters)
    work = Path(tempfile.mkdtemp(prefix="atlas-dnsbench-"))
    (work / "queries.txt").write_text(queries(args.clusters))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # Knot, serving the same records.
        knot_port = free_port()
        (work / "atlas.zone").write_text(zone_file(topo))
        (work / "knot.conf").write_text(
            f"server:\n    listen: 127.0.0.1@{knot_port}\n    rundir: {work}\n    user: root\n"
            f"    background-workers: 1\n    udp-workers: 1\n    tcp-workers: 1\n"
            f"database:\n    storage: {work}\n"
            f"zone:\n  - domain: atlas.\n    file: {work}/atlas.zone\n"
            f"log:\n  - target: stderr\n    any: warning\n"
        )
        procs.append(
            subprocess.Popen(["knotd", "-c", str(work / "knot.conf")], stderr=subprocess.DEVNULL)
        )
        wait_dns(knot_port)
        # Atlas, the real daemon, from manifests.
        source = work / "clusters"
        source.mkdir()
        for c in topo.clusters:
            (source / f"{c.name}.yaml").write_text(
                yaml.safe_dump(
                    {
                        "kind": "Service",
                        "metadata": {
                            "name": c.name,
                            "namespace": "monitoring",
                            "labels": {"goatlas.io/cluster": "true", "goatlas.io/replicas": "2"},
                        },
                        "spec": {"externalIPs": ["192.0.2.1"]},
                    }
                )
            )
        atlas_port = free_port()
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "atlas.cli",
                    "--log-level",
                    "warning",
                    "serve",
                    "--source",
                    str(source),
                    "--state-dir",
                    str(work / "state"),
                    "--ads-listen",
                    "127.0.0.1:0",
                    "--http-listen",
                    "",
                    "--dns-listen",
                    f"127.0.0.1:{atlas_port}",
                    "--envoy-service-ip",
                    ENVOY_IP,
                ],
                cwd=ROOT,
            )
        )
        wait_dns(atlas_port)
        print("Knot:")
        knot = dnsperf(knot_port, work / "queries.txt", args.seconds)
        print("Atlas:")
        atlas = dnsperf(atlas_port, work / "queries.txt", args.seconds)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    ratio = atlas / knot
    print(f"Atlas {atlas:,.0f} qps, Knot {knot:,.0f} qps, ratio {ratio:.2f}x (target >= 0.3x)")
    write_section(
        "DNS throughput (bench/dns_qps.py)",
        "\n".join(
            [
                "| server | queries per second |",
                "|---|---|",
                f"| Knot DNS 3.2 (1 UDP worker) | {knot:,.0f} |",
                f"| Atlas (`atlas serve`, one asyncio loop) | {atlas:,.0f} |",
                f"| ratio | **{ratio:.2f}x** (target ≥ 0.3x) |",
                "",
                f"dnsperf for {args.seconds} s each, 8 clients, up to 200 outstanding queries, "
                f"the same SRV query file ({args.clusters + 1} names: all sidecars and each of "
                f"{args.clusters} clusters with 2 replicas) against the same zone, on the same "
                "2 shared cores.",
            ]
        ),
    )


if __name__ == "__main__":
    main()

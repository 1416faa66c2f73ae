"""The peer, side by side: the same 1,000-cluster CDS answered by Atlas and by sovereign.

sovereign (PyPI) is the Python Envoy control plane: a FastAPI application that renders
templates from its sources and answers Envoy's REST-JSON discovery (``POST
/v3/discovery:clusters``); it has no gRPC. Atlas answers over gRPC ADS. Both get the same
clusters: for each of 1,000 downstream clusters, the observability node's three upstreams
(Thanos, Prometheus, Alertmanager), each with its endpoint, HTTP/2 options and mutual TLS with
the peer's SAN, as Atlas builds them; sovereign's template writes them as Envoy's JSON.

Measured in one run, one process each (sovereign with one worker, Atlas's one event loop),
the client in this process:

* a state-of-the-world CDS request with no version (what a starting Envoy sends), answered in
  full: median and p99 over ``--requests`` requests, each on a new stream (Atlas) or a kept
  HTTP connection (sovereign);
* the response size.

sovereign is installed into its own virtual environment (``~/.cache/atlas-bench/sovereign``,
from PyPI) so that its dependencies never meet Atlas's.

    python -m bench.peer_sovereign [--clusters 1000] [--requests 50]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from atlas.config import Settings
from atlas.demo.ports import free_port
from atlas.demo.processes import wait_for
from bench.xds_scale import creds, pct, topology
from xds_server.builders import build
from xds_server.cache import SnapshotCache
from xds_server.server import AdsServicer, start_server
from xds_server.status import StatusBoard
from xds_server.types import CLUSTER

SOVEREIGN = "sovereign==0.32.12"
VENV = Path.home() / ".cache" / "atlas-bench" / "sovereign"

TEMPLATE = '''
"""Atlas's observability upstreams, as Envoy JSON: three per downstream cluster."""


def call(instances, discovery_request, **kwargs):
    for c in instances:
        for service, port in (("thanos", 10911), ("prometheus", 10914), ("alertmanager", 10913)):
            name = c["name"] + "_" + service
            yield {
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": name,
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                        "socket_address": {"address": c["address"], "port_value": port}
                    }}}]}],
                },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {
                            "connection_keepalive": {"interval": "15s", "timeout": "5s"}
                        }},
                    }
                },
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "common_tls_context": {
                            "alpn_protocols": ["h2"],
                            "tls_certificate_sds_secret_configs": [
                                {"name": "identity", "sds_config": {"ads": {},
                                 "resource_api_version": "V3"}}
                            ],
                            "combined_validation_context": {
                                "default_validation_context": {"match_typed_subject_alt_names": [
                                    {"san_type": "URI", "matcher": {
                                        "exact": "spiffe://atlas/cluster/" + c["name"]}}
                                ]},
                                "validation_context_sds_secret_config": {
                                    "name": "trust-bundle",
                                    "sds_config": {"ads": {}, "resource_api_version": "V3"},
                                },
                            },
                        },
                    },
                },
            }
'''


def sovereign_venv() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / "bin" / "sovereign").exists():
        print(f"installing {SOVEREIGN} into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", SOVEREIGN], check=True)
    return VENV / "bin" / "sovereign"


def start_sovereign(root: Path, n: int) -> tuple[subprocess.Popen[bytes], int]:
    (root / "atlas_peer_clusters.py").write_text(TEMPLATE)
    instances = [{"name": c.name, "address": c.envoy_address} for c in topology(n).clusters]
    config = {
        "sources": [{"type": "inline", "scope": "default", "config": {"instances": instances}}],
        "templates": {
            "default": [
                {
                    "type": "clusters",
                    "spec": {"protocol": "python", "path": str(root / "atlas_peer_clusters.py")},
                }
            ]
        },
    }
    (root / "sovereign.yaml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "SOVEREIGN_CONFIG": f"file://{root / 'sovereign.yaml'}",
        "SOVEREIGN_HOST": "127.0.0.1",
        "SOVEREIGN_PORT": str(port),
        "SOVEREIGN_WORKERS": "1",
        "SOVEREIGN_NODE_MATCHING_ENABLED": "false",
        "PYTHONPATH": str(root),
    }
    log = (root / "sovereign.log").open("wb")
    proc = subprocess.Popen([str(sovereign_venv())], env=env, stdout=log, stderr=log, cwd=root)
    return proc, port


def sovereign_cds(port: int, conn: http.client.HTTPConnection | None = None) -> int:
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps(
        {"node": {"id": "atlas", "cluster": "atlas"}, "version_info": "", "resource_names": []}
    )
    conn.request("POST", "/v3/discovery:clusters", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"sovereign answered {response.status}: {data[:300]!r}")
    return len(json.loads(data)["resources"])


async def atlas_cds(port: int, requests: int) -> tuple[list[float], int, int]:
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    samples, count, size = [], 0, 0
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 1 << 28)]
    ) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        for _ in range(requests + 1):
            request = discovery_pb2.DiscoveryRequest(
                node=base_pb2.Node(id="atlas"), type_url=CLUSTER
            )
            start = time.perf_counter()
            call = stub.StreamAggregatedResources(iter([request]))
            response = await call.read()
            samples.append(time.perf_counter() - start)
            count, size = len(response.resources), response.ByteSize()
            call.cancel()
    return samples[1:], count, size  # the first one warms the channel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    n = args.clusters
    nodes = ["atlas", *(f"c{i}" for i in range(n))]
    cache = SnapshotCache()
    cache.replace_all(build(topology(n), Settings(), creds(nodes, b"B" * 600)).snapshots)

    async def atlas() -> tuple[list[float], int, int]:
        servicer = AdsServicer(
            cache, StatusBoard(), observability_node="atlas", check_identity=False
        )
        server, port = await start_server(servicer, "127.0.0.1:0")
        try:
            return await atlas_cds(port, args.requests)
        finally:
            await server.stop(None)

    atlas_samples, atlas_count, atlas_size = asyncio.run(atlas())
    with tempfile.TemporaryDirectory(prefix="atlas-sovereign-") as tmp:
        proc, port = start_sovereign(Path(tmp), n)
        try:
            wait_for(lambda: sovereign_cds(port), within=120, what="sovereign answers CDS")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            sov_samples = []
            for _ in range(args.requests):
                start = time.perf_counter()
                sov_count = sovereign_cds(port, conn)
                sov_samples.append(time.perf_counter() - start)
            conn.request(
                "POST",
                "/v3/discovery:clusters",
                json.dumps({"node": {"id": "atlas", "cluster": "atlas"}, "version_info": ""}),
                {"Content-Type": "application/json"},
            )
            sov_size = len(conn.getresponse().read())
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    a, s = statistics.median(atlas_samples), statistics.median(sov_samples)
    lines = [
        f"State-of-the-world CDS for the observability node at {n:,} clusters, no version "
        f"(a starting Envoy), {args.requests} requests each, one process each, same run.",
        "",
        "| control plane | resources | response | median | p99 |",
        "|---|---|---|---|---|",
        f"| Atlas (gRPC ADS, protobuf) | {atlas_count:,} | {atlas_size / 1e6:.1f} MB | "
        f"{a * 1000:.1f} ms | {pct(atlas_samples, 0.99) * 1000:.1f} ms |",
        f"| sovereign {SOVEREIGN.split('==')[1]} (REST, JSON) | {sov_count:,} | "
        f"{sov_size / 1e6:.1f} MB | {s * 1000:.1f} ms | {pct(sov_samples, 0.99) * 1000:.1f} ms |",
        "",
        f"Ratio: Atlas answers in {a / s:.3f}x sovereign's time ({s / a:.0f}x faster). The "
        "extra resource on Atlas's side is the upstream no downstream cluster owns (the "
        "control plane). sovereign renders its template on every request without a version "
        "(its discovery cache is off by default); Atlas serves bytes built once per change.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        from bench.report import write_section

        write_section("The peer: sovereign (bench/peer_sovereign.py)", "\n".join(lines))


if __name__ == "__main__":
    main()

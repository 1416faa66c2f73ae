"""The daemon wired together in-process: source → zone → DNS answers, SERVFAIL until synced."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import yaml

from atlas.daemon import Atlas, ServeOptions

SRV_ALL = "_grpc._tcp.sidecars.thanos.atlas."


def manifest(name: str) -> str:
    return yaml.safe_dump(
        {
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": "monitoring",
                "labels": {"goatlas.io/cluster": "true", "goatlas.io/replicas": "2"},
            },
            "spec": {"externalIPs": ["192.0.2.1"]},
        }
    )


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
        return str(r.read().decode())


async def srv(port: int) -> dns.message.Message:
    return await dns.asyncquery.tcp(
        dns.message.make_query(SRV_ALL, "SRV"), "127.0.0.1", port=port, timeout=2
    )


async def until(check, within: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, f"not within {within}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_servfail_until_synced_then_changes_within_a_second(tmp_path: Path) -> None:
    source = tmp_path / "clusters"  # absent at first: the source cannot sync
    atlas = Atlas(
        ServeOptions(
            source=str(source),
            state_dir=str(tmp_path / "state"),
            ads_listen="127.0.0.1:0",
            ads_tls=False,
            http_listen="127.0.0.1:0",
            dns_listen=("127.0.0.1:0",),
            dns_addresses=("10.0.0.7",),
        )
    )
    await atlas.start()
    try:
        port = atlas.dns_ports[0]
        await asyncio.sleep(0.5)
        assert (await srv(port)).rcode() == dns.rcode.SERVFAIL, "never 'nothing' before sync"

        source.mkdir()
        (source / "east.yaml").write_text(manifest("east"))

        async def has(n: int) -> bool:
            r = await srv(port)
            return r.rcode() == dns.rcode.NOERROR and sum(len(x) for x in r.answer) == n

        took_add = await until(lambda: has(2), within=1.5)
        answer = await srv(port)
        assert {rr.to_text().split()[-1] for rr in answer.additional} == {"10.0.0.7"}
        (source / "west.yaml").write_text(manifest("west"))
        await until(lambda: has(4), within=1.0)
        (source / "east.yaml").unlink()
        took_remove = await until(lambda: has(2), within=1.0)
        east = await dns.asyncquery.udp(
            dns.message.make_query("east-0.sidecars.thanos.atlas.", "A"),
            "127.0.0.1",
            port=port,
            timeout=2,
        )
        assert east.rcode() == dns.rcode.NXDOMAIN, "a deleted cluster disappears at once"
        print(f"add visible after {took_add:.2f}s, removal after {took_remove:.2f}s")
        metrics = await asyncio.to_thread(_get, atlas.http_port, "/metrics")
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line and not line.startswith("#")
        }
        assert samples['atlas_dns_queries_total{rcode="SERVFAIL",type="SRV"}'] >= 1
        assert samples['atlas_dns_queries_total{rcode="NOERROR",type="SRV"}'] >= 3
        assert samples['atlas_dns_queries_total{rcode="NXDOMAIN",type="A"}'] >= 1
        assert samples['atlas_dns_answer_seconds_count{transport="tcp"}'] >= 3
        assert samples["atlas_dns_zone_serial"] > 0
        assert samples["atlas_dns_zone_records"] == 2 + 2 * 3  # SOA, NS; west: 2 SRV sets + 2 A
        status = json.loads(await asyncio.to_thread(_get, atlas.http_port, "/status"))
        assert status["synced"] and [c["name"] for c in status["clusters"]] == ["west"]
    finally:
        await atlas.stop()

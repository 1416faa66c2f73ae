"""The daemon wired together in-process: source → zone → DNS answers, SERVFAIL until synced."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from atlas.serve.daemon import Atlas
from tests.atlas.serve.daemons import manifest, options, started
from tests.polling import until

SRV_ALL = "_grpc._tcp.sidecars.thanos.atlas."


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
        return str(r.read().decode())


async def srv(port: int) -> dns.message.Message:
    return await dns.asyncquery.tcp(
        dns.message.make_query(SRV_ALL, "SRV"), "127.0.0.1", port=port, timeout=2
    )


async def test_servfail_until_synced_then_changes_within_a_second(tmp_path: Path) -> None:
    source = tmp_path / "clusters"  # absent at first: the source cannot sync
    atlas = Atlas(options(tmp_path))
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

        started = time.monotonic()
        await until(lambda: has(2), within=1.5, what="east's two replicas answered")
        took_add = time.monotonic() - started
        answer = await srv(port)
        assert {rr.to_text().split()[-1] for rr in answer.additional} == {"10.0.0.7"}
        (source / "west.yaml").write_text(manifest("west"))
        await until(lambda: has(4), within=1.0, what="west's replicas added")
        (source / "east.yaml").unlink()
        started = time.monotonic()
        await until(lambda: has(2), within=1.0, what="east's replicas gone")
        took_remove = time.monotonic() - started
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


def http_status(port: int, path: str) -> tuple[int, str]:
    try:
        return 200, _get(port, path)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_failing_build_keeps_serving_and_says_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception inside the build (a bug) once ended the publisher for good, silently."""
    import xds_server.publisher as publisher

    atlas = await started(tmp_path)
    try:
        port = atlas.http_port
        assert (await asyncio.to_thread(http_status, port, "/readyz"))[0] == 200
        real_build = vars(publisher)["build"]

        def broken(*args: object, **kwargs: object) -> object:
            raise RuntimeError("injected build failure")

        monkeypatch.setattr(publisher, "build", broken)
        errors = sample("atlas_xds_snapshot_build_errors_total")
        (tmp_path / "clusters" / "west.yaml").write_text(manifest("west"))
        with caplog.at_level(logging.ERROR, logger="xds_server.publisher"):
            await until(
                lambda: atlas.publisher.last_error is not None,
                within=5,
                what="the build failure recorded",
            )
        code, body = await asyncio.to_thread(http_status, port, "/readyz")
        assert code == 503 and "last build failed: RuntimeError: injected build failure" in body
        assert (await asyncio.to_thread(http_status, port, "/healthz"))[0] == 200, (
            "the publisher itself lives on"
        )
        assert sample("atlas_xds_snapshot_build_errors_total") > errors
        record = next(r for r in caplog.records if "injected build failure" in r.getMessage())
        assert record.exc_info is not None, "logged with its traceback"
        assert atlas.cache.snapshot("east") is not None and atlas.cache.snapshot("west") is None
        monkeypatch.setattr(publisher, "build", real_build)
        await until(
            lambda: atlas.cache.snapshot("west") is not None, within=5, what="west's snapshot"
        )
        assert (await asyncio.to_thread(http_status, port, "/readyz"))[0] == 200
        status = json.loads(await asyncio.to_thread(_get, port, "/status"))
        assert status["publisher"]["last_error"] is None and status["ready"] is True
        assert status["publisher"]["generation"] >= 2 and status["publisher"]["source_version"]
    finally:
        await atlas.stop()


async def test_every_supervised_task_recovers_from_an_injected_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atlas.serve.modes import DirectoryMode
    from watchers.files import DirectorySource
    from xds_server.publisher import SnapshotPublisher

    injected: dict[str, int] = {}

    def fail_once(name: str, real):  # type: ignore[no-untyped-def]
        async def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            if name not in injected:
                injected[name] = 1
                raise RuntimeError(f"injected into {name}")
            return await real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(DirectorySource, "run", fail_once("source", DirectorySource.run))
    monkeypatch.setattr(SnapshotPublisher, "run", fail_once("publisher", SnapshotPublisher.run))
    monkeypatch.setattr(
        DirectoryMode, "_watch_ca_files", fail_once("pki-files", DirectoryMode._watch_ca_files)
    )
    before = {
        t: sample("atlas_task_failures_total", task=t) for t in ("source", "publisher", "pki-files")
    }
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / "east.yaml").write_text(manifest("east"))
    atlas = Atlas(options(tmp_path))
    await atlas.start()
    try:
        code, body = await asyncio.to_thread(http_status, atlas.http_port, "/healthz")
        assert code == 503 and "failed; restarting in" in body
        await until(lambda: not atlas.supervisor.problems(), within=5, what="no task problems")
        assert (await asyncio.to_thread(http_status, atlas.http_port, "/healthz"))[0] == 200
        await until(
            lambda: atlas.cache.snapshot("east") is not None, within=5, what="east's snapshot"
        )
        for task, count in before.items():
            assert sample("atlas_task_failures_total", task=task) == count + 1, task
            assert sample("atlas_task_restarts_total", task=task) >= 1, task
    finally:
        await atlas.stop()


async def test_a_replica_that_stops_serving_dns_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "clusters").mkdir()
    atlas = Atlas(options(tmp_path))
    await atlas.start()
    try:
        await atlas.dns.stop()  # as if its sockets were gone
        async with asyncio.timeout(5):
            await atlas.wait_stopping()
        assert atlas.exit_code == 1
        assert "task servers failed: DNS stopped serving" in atlas.supervisor.problems()
    finally:
        await atlas.stop()


async def test_a_restart_with_an_invalid_manifest_never_revokes_the_cluster(
    tmp_path: Path,
) -> None:
    """Found by the randomized run. With its memory (the state directory's last-good.json),
    the restarted daemon serves east as before; without it, east is held: not routed, but
    still a member whose credentials are kept."""
    (tmp_path / "clusters").mkdir()
    east = tmp_path / "clusters" / "east.yaml"
    east.write_text(manifest("east"))
    atlas = Atlas(options(tmp_path))
    await atlas.start()
    try:
        await until(
            lambda: atlas.cache.snapshot("east") is not None, within=5, what="east's snapshot"
        )
    finally:
        await atlas.stop()
    leaf = tmp_path / "state" / "pki" / "node-east.crt"
    assert leaf.exists()
    east.write_text(manifest("east").replace("'2'", "two"))
    for memory in (True, False):
        if not memory:
            (tmp_path / "state" / "last-good.json").unlink()
        atlas = Atlas(options(tmp_path))
        await atlas.start()
        try:
            await until(lambda: atlas.publisher.builds > 0, within=5, what="a build")  # noqa: B023
            status = atlas.status()
            if memory:
                assert [c["name"] for c in status["clusters"]] == ["east"]
                assert status["held"] == []
            else:
                assert status["clusters"] == [] and status["held"] == ["east"]
                assert atlas.publisher.members is not None and "east" in atlas.publisher.members
            assert leaf.exists(), "its credentials are kept: no re-install needed"
        finally:
            await atlas.stop()

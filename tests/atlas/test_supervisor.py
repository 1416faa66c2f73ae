"""No task ends silently: failures are logged with their traceback, counted, reflected in
liveness, and then restarted (or, for the servers, the daemon exits non-zero)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from prometheus_client import REGISTRY

from atlas.supervisor import Busy, Policy, Supervisor, run_thread


def counter(name: str, task: str) -> float:
    return REGISTRY.get_sample_value(name, {"task": task}) or 0.0


async def test_a_failing_task_is_logged_counted_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []
    recovered = asyncio.Event()

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) < 3:
            raise ValueError(f"injected failure {len(runs)}")
        recovered.set()
        await asyncio.Event().wait()

    fatal: list[str] = []
    sup = Supervisor(fatal.append, backoff_initial=0.05, backoff_max=0.2)
    before = counter("atlas_task_failures_total", "flaky")
    with caplog.at_level(logging.ERROR, logger="atlas.supervisor"):
        task = sup.start("flaky", flaky, Policy.RESTART)
        problems_seen: list[str] = []
        while not recovered.is_set():
            problems_seen += sup.problems()
            await asyncio.sleep(0.005)
    try:
        assert len(runs) == 3 and fatal == []
        assert counter("atlas_task_failures_total", "flaky") == before + 2
        assert counter("atlas_task_restarts_total", "flaky") >= 2
        assert runs[2] - runs[1] >= 2 * (runs[1] - runs[0]) * 0.9, "the backoff doubles"
        assert any("task flaky failed; restarting in" in p for p in problems_seen), (
            "liveness fails while the task waits to restart"
        )
        assert sup.problems() == []
        logged = [r for r in caplog.records if "task flaky failed" in r.getMessage()]
        assert len(logged) == 2 and all(r.exc_info and r.exc_info[0] is ValueError for r in logged)
        assert REGISTRY.get_sample_value("atlas_task_up", {"task": "flaky"}) == 1.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sup.problems() == ["task flaky stopped"]


async def test_a_task_that_returns_is_a_failure_too() -> None:
    returned = 0

    async def ends() -> None:
        nonlocal returned
        returned += 1
        if returned > 1:
            await asyncio.Event().wait()

    sup = Supervisor(lambda name: None, backoff_initial=0.01)
    task = sup.start("ends", ends, Policy.RESTART)
    while returned < 2:
        await asyncio.sleep(0.005)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert counter("atlas_task_failures_total", "ends") >= 1


async def test_a_server_failure_stops_the_daemon(caplog: pytest.LogCaptureFixture) -> None:
    async def server() -> None:
        raise RuntimeError("DNS stopped serving")

    fatal: list[str] = []
    sup = Supervisor(fatal.append)
    with caplog.at_level(logging.CRITICAL, logger="atlas.supervisor"):
        await sup.start("servers", server, Policy.EXIT)
    assert fatal == ["servers"]
    assert sup.problems() == ["task servers failed: DNS stopped serving"]
    assert any("stopping Atlas (exit 1)" in r.getMessage() for r in caplog.records)


async def test_a_task_busy_for_too_long_is_stuck() -> None:
    busy = Busy()
    started = asyncio.Event()

    async def builds() -> None:
        with busy.working():
            started.set()
            await asyncio.Event().wait()

    sup = Supervisor(lambda name: None)
    task = sup.start("publisher", builds, Policy.RESTART, busy=busy, stuck_after=0.05)
    await started.wait()
    assert sup.problems() == []
    await asyncio.sleep(0.1)
    (problem,) = sup.problems()
    assert problem.startswith("task publisher stuck: busy for")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_thread_is_restarted_and_a_dead_one_is_noticed(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    calls: list[int] = []
    steady = threading.Event()

    def watch() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("injected")
        steady.set()
        stop.wait()

    sup = Supervisor(lambda name: None)
    with caplog.at_level(logging.ERROR, logger="atlas.supervisor"):
        thread = run_thread("watch-Service", watch, stop, backoff_initial=0.01)
        sup.watch_thread(thread)
        assert steady.wait(5)
    assert len(calls) == 2 and sup.problems() == []
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    stop.set()
    thread.join(5)
    assert sup.problems() == ["thread watch-Service ended"]

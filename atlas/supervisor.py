"""Every long-running task of the daemon, supervised: none may end silently.

A task that raises (or returns, which a long-running task must never do) is logged with its
traceback and counted (``atlas_task_failures_total{task}``). Then, by its policy:

* ``RESTART``: it runs again after a backoff (doubling from ``backoff_initial`` up to
  ``backoff_max``, reset once it has run a minute without failing). Loops whose state survives
  in their objects (the publisher keeps the last build, the sources their caches) restart.
* ``EXIT``: the daemon stops and exits non-zero, so Kubernetes restarts the pod. For the
  servers: a replica that no longer answers ADS, DNS or HTTP must not linger half-alive.

``problems()`` feeds ``/healthz``: a task that is not running (waiting to restart, or ended),
or one that has been busy longer than its ``stuck_after`` (a build that never finishes), is a
problem. Threads (the leader elector, the Kubernetes watches) run under ``run_thread``, which
restarts their function the same way inside the thread.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

__all__ = ["Busy", "Policy", "Supervisor", "run_thread"]

log = logging.getLogger(__name__)

FAILURES = Counter(
    "atlas_task_failures_total",
    "Unexpected exceptions (or returns) of the daemon's long-running tasks",
    ["task"],
)
RESTARTS = Counter("atlas_task_restarts_total", "Restarts of a failed task", ["task"])
UP = Gauge(
    "atlas_task_up", "1 while the task runs (0 while it waits to restart, or ended)", ["task"]
)

HEALTHY_RUN = 60.0
"""A task that ran this long before failing starts its backoff from the beginning again."""


class Policy(enum.Enum):
    RESTART = "restart"
    EXIT = "exit"


class Busy:
    """Marks work in progress, so a stuck task can be told from an idle one."""

    def __init__(self) -> None:
        self.since: float | None = None

    @contextmanager
    def working(self) -> Iterator[None]:
        self.since = time.monotonic()
        try:
            yield
        finally:
            self.since = None

    def for_longer_than(self, seconds: float) -> float | None:
        since = self.since
        if since is None:
            return None
        busy = time.monotonic() - since
        return busy if busy > seconds else None


@dataclass
class _Task:
    name: str
    policy: Policy
    busy: Busy | None
    stuck_after: float
    running: bool = False
    ended: str | None = None
    restart_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self,
        on_fatal: Callable[[str], None],
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.on_fatal = on_fatal
        """Called once a task with the EXIT policy failed: the daemon stops, exit code 1."""
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._tasks: dict[str, _Task] = {}
        self._threads: dict[str, threading.Thread] = {}

    def start(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        policy: Policy,
        *,
        busy: Busy | None = None,
        stuck_after: float = 300.0,
    ) -> asyncio.Task[None]:
        entry = _Task(name, policy, busy, stuck_after)
        self._tasks[name] = entry
        entry.task = asyncio.create_task(self._supervise(entry, factory), name=name)
        return entry.task

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t.task for t in self._tasks.values() if t.task is not None]

    def watch_thread(self, thread: threading.Thread) -> None:
        """A thread (under ``run_thread``) that must stay alive: its death is a problem."""
        self._threads[thread.name] = thread

    async def _supervise(self, entry: _Task, factory: Callable[[], Awaitable[None]]) -> None:
        delay = self.backoff_initial
        while True:
            started = time.monotonic()
            entry.running, entry.restart_at = True, None
            UP.labels(entry.name).set(1)
            try:
                await factory()
                raise RuntimeError(f"task {entry.name} returned; it must run until stopped")
            except asyncio.CancelledError:
                entry.running, entry.ended = False, "stopped"
                UP.labels(entry.name).set(0)
                raise
            except Exception as err:
                entry.running = False
                UP.labels(entry.name).set(0)
                FAILURES.labels(entry.name).inc()
                log.error("task %s failed: %s", entry.name, err, exc_info=err)
                if entry.policy is Policy.EXIT:
                    entry.ended = f"failed: {err}"
                    log.critical("task %s cannot continue: stopping Atlas (exit 1)", entry.name)
                    self.on_fatal(entry.name)
                    return
            if time.monotonic() - started > HEALTHY_RUN:
                delay = self.backoff_initial
            entry.restart_at = time.monotonic() + delay
            log.warning("restarting task %s in %.1fs", entry.name, delay)
            RESTARTS.labels(entry.name).inc()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    def problems(self) -> list[str]:
        """Why the daemon is not live; empty when every task runs and none is stuck."""
        found = []
        for t in self._tasks.values():
            if not t.running:
                if t.restart_at is not None:
                    left = max(0.0, t.restart_at - time.monotonic())
                    found.append(f"task {t.name} failed; restarting in {left:.1f}s")
                else:
                    found.append(f"task {t.name} {t.ended or 'is not running'}")
            elif t.busy is not None:
                busy = t.busy.for_longer_than(t.stuck_after)
                if busy is not None:
                    found.append(f"task {t.name} stuck: busy for {busy:.0f}s")
        for name, thread in self._threads.items():
            if not thread.is_alive():
                found.append(f"thread {name} ended")
        return found


def run_thread(
    name: str,
    fn: Callable[[], None],
    stop: threading.Event,
    *,
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
) -> threading.Thread:
    """Start ``fn`` in a daemon thread, restarted with backoff when it raises or returns before
    ``stop`` is set: the thread itself only ends once asked to."""

    def loop() -> None:
        delay = backoff_initial
        while not stop.is_set():
            started = time.monotonic()
            try:
                fn()
                if stop.is_set():
                    return
                raise RuntimeError(f"thread {name} returned; it must run until stopped")
            except Exception as err:
                FAILURES.labels(name).inc()
                log.error("thread %s failed: %s", name, err, exc_info=err)
            if time.monotonic() - started > HEALTHY_RUN:
                delay = backoff_initial
            RESTARTS.labels(name).inc()
            log.warning("restarting thread %s in %.1fs", name, delay)
            stop.wait(delay)
            delay = min(delay * 2, backoff_max)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread

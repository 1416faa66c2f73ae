"""Child processes a command starts and must not leave behind: ``atlas demo``'s, and the end
to end tests', which start their processes with this same code.

A ``Process`` runs in its own session (a terminal's Ctrl-C reaches only the parent, which
stops the children in order), logs to a file, and is stopped with SIGTERM, then SIGKILL after
a grace period, also when it was started by a part that failed to get ready. A
``ProcessGroup`` holds the demo's, stopped newest first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Process", "ProcessGroup", "stop_child", "wait_for"]

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None], *, within: float, what: str, interval: float = 0.1
) -> T:
    """``check()``'s first truthy result; raises TimeoutError naming ``what`` and the last
    exception ``check`` raised."""
    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as err:  # a part that is not up yet refuses connections
            last = err
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {within:.0f}s" + (f" ({last})" if last else ""))


def stop_child(
    proc: subprocess.Popen[bytes] | None, *, sig: int = signal.SIGTERM, grace: float = 5.0
) -> None:
    """Signal ``proc``, and kill it if it has not exited after ``grace`` seconds: a child that
    ignores SIGTERM must not outlive whoever started it."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Process:
    """A named child: started in its own session (a terminal's Ctrl-C reaches only whoever
    started it), logged to a file, stopped with SIGTERM and then SIGKILL after a grace period,
    and started again as it was (a restart in a test, a crash in the demo)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name, self.argv, self.log, self.cwd = name, list(argv), log, cwd
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                start_new_session=True,
            )

    def start_and_wait(self, ready: Callable[[], Any], *, within: float, what: str) -> None:
        """Start, then wait for ``ready``; a part that never gets ready is stopped, not
        leaked, and the TimeoutError names it."""
        self.start()
        try:
            wait_for(ready, within=within, what=what)
        except BaseException:
            self.kill()
            raise

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL, *, grace: float = 10.0) -> None:
        stop_child(self.proc, sig=sig, grace=grace)
        self.proc = None

    def stop(self, *, grace: float = 10.0) -> None:
        self.kill(signal.SIGTERM, grace=grace)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    logs: Path
    children: dict[str, Process] = field(default_factory=dict)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        child = Process(name, argv, self.logs / f"{name}.log", cwd=cwd, env=env)
        child.start()
        self.children[name] = child
        return child

    def stop(self, name: str, *, grace: float = 5.0) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            child.stop(grace=grace)

    def stop_all(self, *, grace: float = 5.0) -> None:
        """Newest first: what depends on a part stops before it."""
        for name in reversed(list(self.children)):
            self.stop(name, grace=grace)

    def dead(self) -> list[Process]:
        """Children that exited on their own."""
        return [c for c in self.children.values() if not c.running]

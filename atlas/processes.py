"""Child processes a command starts and must not leave behind (``atlas demo``, the tests).

A ``ProcessGroup`` starts each child in its own session (a terminal's Ctrl-C reaches only the
parent, which stops the children in order), logs it to a file, and stops every child on
``stop()``: SIGTERM, then SIGKILL after a grace period, also for a child started by a part that
failed to get ready.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Child", "ProcessGroup", "stop_child", "wait_for"]


def wait_for(check: Callable[[], Any], *, within: float, what: str, interval: float = 0.1) -> Any:
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


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    logs: Path
    children: dict[str, Child] = field(default_factory=dict)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("ab") as handle:
            proc = subprocess.Popen(
                list(argv),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        child = Child(name, argv, log, proc)
        self.children[name] = child
        return child

    def stop(self, name: str, *, grace: float = 5.0) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            stop_child(child.proc, grace=grace)

    def stop_all(self, *, grace: float = 5.0) -> None:
        """Newest first: what depends on a part stops before it."""
        for name in reversed(list(self.children)):
            self.stop(name, grace=grace)

    def dead(self) -> list[Child]:
        """Children that exited on their own."""
        return [c for c in self.children.values() if not c.running]

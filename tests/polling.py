"""The tests' one way to wait for something that has no event to wait on: poll a check until
it returns something truthy, or fail the test (AssertionError) naming what did not happen and
the last error the check raised. ``wait_until`` from a thread, ``until`` on an event loop
(where sleeping would stop the code under test)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from atlas.demo.processes import wait_for

__all__ = ["until", "wait_until"]

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], *, within: float, what: str, interval: float = 0.05
) -> T:
    """``check()``'s first truthy result (``atlas.demo.processes.wait_for``, which the demo
    uses), failing the test on time-out."""
    try:
        return wait_for(check, within=within, what=what, interval=interval)
    except TimeoutError as err:
        raise AssertionError(str(err)) from None


@overload
async def until(
    check: Callable[[], Awaitable[T]],
    *,
    within: float,
    what: str,
    interval: float = ...,
    blocking: bool = ...,
) -> T: ...


@overload
async def until(
    check: Callable[[], T | None],
    *,
    within: float,
    what: str,
    interval: float = ...,
    blocking: bool = ...,
) -> T: ...


async def until(
    check: Callable[[], Any],
    *,
    within: float,
    what: str,
    interval: float = 0.02,
    blocking: bool = False,
) -> Any:
    """``wait_until`` on an event loop: ``check`` may be a plain or an async function, or
    one that blocks (a Kubernetes call: ``blocking``), which runs in a thread so that the
    code under test keeps running."""
    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = await asyncio.to_thread(check) if blocking else check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except Exception as err:  # not up yet
            last = err
        await asyncio.sleep(interval)
    raise AssertionError(f"{what}: not within {within:g}s" + (f" ({last})" if last else ""))

"""Waiting on an event with a deadline, without losing a cancellation.

Python 3.11's ``asyncio.wait_for`` can swallow a task's cancellation when the awaited event
fires at the same moment; a ``while True`` loop around it then never stops (seen as a daemon
that would not shut down). ``asyncio.timeout`` handles that race correctly.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True if ``event`` was set within ``timeout`` seconds, False on timeout."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True

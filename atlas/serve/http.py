"""A tiny HTTP endpoint on the daemon's loop: ``/metrics``, ``/status`` (JSON), ``/healthz``
(liveness) and ``/readyz`` (readiness): 200 when all is well, else 503 with the reasons.

Read-only and small on purpose; it never prints key material: status lists versions,
identities and messages only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["start_http"]

log = logging.getLogger(__name__)

StatusFn = Callable[[], dict[str, Any]]
ProblemsFn = Callable[[], list[str]]
"""Why the daemon is not live (or not ready); empty when it is."""
_MAX_REQUEST = 8192


def _verdict(problems: list[str], good: bytes) -> tuple[int, str, bytes]:
    if not problems:
        return 200, "text/plain", good
    return 503, "text/plain", "".join(f"{p}\n" for p in problems).encode()


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    status: StatusFn,
    live: ProblemsFn,
    ready: ProblemsFn,
) -> None:
    try:
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_REQUEST:
            raise ValueError("request too large")
        method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        path = path.split("?", 1)[0]
        if method != "GET":
            code, ctype, body = 405, "text/plain", b"method not allowed\n"
        elif path == "/metrics":
            code, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest()
        elif path == "/status":
            code, ctype = 200, "application/json"
            body = json.dumps(status(), indent=2, sort_keys=True).encode()
        elif path == "/healthz":
            code, ctype, body = _verdict(live(), b"ok\n")
        elif path == "/readyz":
            code, ctype, body = _verdict(ready(), b"ready\n")
        else:
            code, ctype, body = 404, "text/plain", b"not found\n"
    except (
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        TimeoutError,
        ValueError,
        UnicodeDecodeError,
    ):
        code, ctype, body = 400, "text/plain", b"bad request\n"
    except ConnectionError:
        writer.close()
        return
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        503: "Service Unavailable",
    }[code]
    writer.write(
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    try:
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def start_http(
    host: str,
    port: int,
    *,
    status: StatusFn,
    live: ProblemsFn = list,
    ready: ProblemsFn = list,
) -> asyncio.Server:
    return await asyncio.start_server(
        lambda r, w: _handle(r, w, status, live, ready), host, port, limit=_MAX_REQUEST
    )

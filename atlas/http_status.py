"""A tiny HTTP endpoint on the daemon's loop: ``/metrics``, ``/status`` (JSON), ``/healthz``.

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
_MAX_REQUEST = 8192


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: StatusFn
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
            code, ctype, body = 200, "text/plain", b"ok\n"
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
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[code]
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


async def start_http(host: str, port: int, status: StatusFn) -> asyncio.Server:
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, status), host, port, limit=_MAX_REQUEST
    )
    return server

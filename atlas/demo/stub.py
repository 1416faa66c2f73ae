"""A stand-in for a Prometheus or Alertmanager web server: real HTTP on loopback that says who
it is. The demo uses it only where Debian's real ones are not installed (and says so); the
end-to-end tests use it everywhere they do not test the real ones, and read what arrived.

Every request is recorded (method, path, Host, body). ``/-/ready`` answers as the real ones
do; alerts POSTed to ``/api/v2/alerts`` are kept and listed by a GET there, so alerts still
visibly cross the tunnel; anything else gets ``{"status": "success", "server": <name>,
"path": <path>}``, which tells a test which server a request reached, and with which path.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebStandIn"]

ALERTS = "/api/v2/alerts"


class WebStandIn:
    def __init__(self, host: str, port: int, name: str) -> None:
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        """Status, body and content type of the reply to a request."""
        if path.startswith("/-/ready"):
            return 200, b"ready\n", "text/plain"
        if path.startswith(ALERTS) and method == "GET":
            return 200, json.dumps(self.alerts).encode(), "application/json"
        if path.startswith(ALERTS) and method == "POST":
            try:
                self.alerts.extend(json.loads(body or b"[]"))
            except (ValueError, TypeError):
                return 400, b"bad alerts\n", "text/plain"
        said = {"status": "success", "server": self.name, "path": path}
        return 200, json.dumps(said).encode(), "application/json"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(stand_in: WebStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            stand_in.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "host": self.headers.get("Host"),
                    "body": body,
                }
            )
            code, reply, ctype = stand_in.answer(self.command, self.path, body)
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except ConnectionError:  # the client (an Envoy reset) went away first
                pass

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    return Handler

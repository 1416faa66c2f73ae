"""Built-in stand-ins for Prometheus and Alertmanager, used by the demo only where Debian's
real ones are not installed (it says so). The Alertmanager stand-in keeps the alerts it is sent
and lists them at ``/api/v2/alerts``, so alerts still visibly cross the tunnel."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebStandIn"]


class WebStandIn:
    def __init__(self, host: str, port: int, what: str) -> None:
        self.what = what
        self.alerts: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.startswith("/api/v2/alerts"):
                    self._send(200, json.dumps(outer.alerts).encode(), "application/json")
                elif self.path.startswith("/-/ready"):
                    self._send(200, b"ready\n", "text/plain")
                else:
                    page = f"<html><body><h1>{outer.what} (Atlas demo stand-in)</h1></body></html>"
                    self._send(200, page.encode(), "text/html")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                if self.path.startswith("/api/v2/alerts"):
                    try:
                        outer.alerts.extend(json.loads(payload or b"[]"))
                    except ValueError:
                        self._send(400, b"bad alerts\n", "text/plain")
                        return
                self._send(200, b"{}", "application/json")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

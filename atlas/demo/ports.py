"""Ports for parts started on loopback by a test or a benchmark: picked free per run, each
free on every address it will be bound on, never handed out twice in one process."""

from __future__ import annotations

import socket

__all__ = ["free_port", "listener_ports"]

_HANDED_OUT: set[int] = set()
"""Ports ``free_port`` returned in this process: the kernel may offer a just-released port
again, and two listeners of one Envoy on the same port make it reject the second."""


def free_port(*hosts: str) -> int:
    """A port free on every host given (bind, read, release), never one returned before."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = int(s.getsockname()[1])
        ok = port not in _HANDED_OUT
        for host in hosts[1:]:
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    ok = False
        if ok:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


def listener_ports(*hosts: str) -> tuple[dict[str, int], dict[str, int]]:
    """Free ports for the observability Envoy's listeners and every downstream Envoy's, each
    free on all ``hosts`` (the Envoys' loopback addresses), named as in ``atlas.config``."""
    observability = {
        k: free_port(*hosts)
        for k in ("ads", "thanos", "alertmanager_ui", "alert_intake", "prometheus_ui")
    }
    downstream = {
        k: free_port(*hosts) for k in ("thanos", "alertmanager", "alert_relay", "prometheus")
    }
    return observability, downstream

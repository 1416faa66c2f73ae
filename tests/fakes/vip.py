"""A Kubernetes Service's virtual IP, as kube-proxy makes it: each new TCP connection goes to
the next backend in turn, skipping backends that refuse (a dead pod's address). The tests put
it where a real deployment has the Atlas Service, so Envoys spread over the replicas and find
the survivor when one dies."""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["ServiceVIP"]


class ServiceVIP:
    def __init__(self, host: str, port: int, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.connections: list[tuple[str, int]] = []
        """The backend each accepted connection went to, in order."""
        self._next = 0
        self._lock = threading.Lock()
        self._server = socket.create_server((host, port))
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="vip", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        with self._lock:
            order = [
                self.backends[(self._next + i) % len(self.backends)]
                for i in range(len(self.backends))
            ]
            self._next += 1
        for backend in order:
            try:
                upstream = socket.create_connection(backend, timeout=2)
            except OSError:
                continue
            upstream.settimeout(None)
            self.connections.append(backend)
            return upstream
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        done = threading.Event()

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                done.set()
                # One side gone (a killed pod): the other end sees it at once, as through a
                # real Service VIP, where the connection is end to end and gets reset.
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)
        done.wait(1)
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._closed.set()
        self._server.close()

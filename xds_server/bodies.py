"""The resources part of large responses, shared between streams.

The observability node's state-of-the-world CDS response at 10,000 clusters carries 30,000
upstreams (about 15 MB). Every observability Envoy connected to a replica, and every reconnect
of one, would join those bytes again; the part between the version and the nonce depends only
on the set sent, so it is joined once per version and reused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["LARGE", "Bodies"]

LARGE = 1000
"""Resources in a response from which its body is cached, and encoded off the event loop
(``server.py``): below it, joining costs less than a cache lookup and a thread hop."""


class Bodies:
    """A small LRU of encoded bodies, safe to use from the encoding threads."""

    def __init__(self, entries: int = 4) -> None:
        self._entries = entries
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
                self.hits += 1
                return body
            self.misses += 1
        body = make()  # outside the lock: two streams may both join it, neither waits
        with self._lock:
            self._bodies[key] = body
            while len(self._bodies) > self._entries:
                self._bodies.popitem(last=False)
        return body

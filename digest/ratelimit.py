"""A small sliding-window rate limit, kept in memory: per process, forgotten on restart.

    limit = SlidingWindow(limit=10, window=3600)
    wait = limit.hit(("subscribe", "203.0.113.7"))   # None: go ahead; else seconds until allowed

Each key keeps the times of its last ``limit`` accepted hits; a refused hit is not recorded, so a
client that keeps knocking is let in again once its oldest hit leaves the window. At most
``max_keys`` keys are remembered (the least recently used go first), so memory stays bounded
under a flood of distinct addresses.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds."""

    def __init__(
        self, limit: int, window: float, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.max_keys, self.clock = limit, window, max_keys, clock
        self._hits: OrderedDict[Hashable, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: Hashable) -> float | None:
        """Record a hit for ``key`` and return None, or return the seconds to wait when over the limit."""
        now = self.clock()
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            self._hits[key] = hits  # most recently used last
            if len(hits) >= self.limit:
                return max(1.0, hits[0] + self.window - now)
            hits.append(now)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            return None

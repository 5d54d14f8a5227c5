"""A small sliding-window rate limit, kept in memory: per process, forgotten on restart.

    limit = SlidingWindow(limit=10, window=3600)
    wait = limit.hit(("subscribe", "203.0.113.7"))   # None: go ahead; else seconds until allowed

Each key keeps the times of its last ``limit`` accepted hits; a refused hit is not recorded, so a
client that keeps knocking is let in again once its oldest hit leaves the window. At most
``max_keys`` keys are remembered (the least recently used go first), so memory stays bounded
under a flood of distinct addresses. `ip_key` is the client an IP address counts as (an IPv6
client by its /64); `digest.addresses.limit_key` is the mailbox an email address counts as.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

__all__ = ["SlidingWindow", "ip_key"]


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


def ip_key(host: str) -> str:
    """The client a limit counts by: an IPv4 address as it is, an IPv6 one by its /64 (what one
    customer or machine usually gets, so rotating through it is still one client)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)

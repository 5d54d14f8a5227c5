"""How ``digest serve`` stays up under slow and idle clients: uvicorn, with limits it lacks.

uvicorn times out an idle keep-alive connection, but not a new connection that never sends a
request, nor one that sends its headers a byte at a time; and it has no cap on connections, so
1,100 such connections from one client used every open file, accept() failed in a loop and
``/healthz`` stopped answering. So the server here adds, per connection (`GuardedH11`):

- **a request timeout**: a request's headers and body must arrive within `REQUEST_TIMEOUT`
  seconds of the connection opening, or of the first byte after a keep-alive pause; the idle
  keep-alive timeout stays uvicorn's (`IDLE_TIMEOUT`);
- **caps** (`ConnectionGuard`): at most ``per_client`` connections from one peer address and
  ``total`` in all, the total kept below the open-file limit so accept() always has a file to
  use (with room for one burst of accept(): asyncio accepts up to `BACKLOG` connections before
  the first is counted). A connection over a cap pushes out the oldest *idle* connection (no request in the app)
  of that client, or of everyone for the total; only when none is idle is the new one refused.
  A slow client thus loses its own oldest connections, and a new visitor always gets in.
  Reverse proxies (``--forwarded-allow-ips``) carry many readers, so only the total binds them.

and logging that cannot flood (`Throttle`): a message repeated within `LOG_INTERVAL` seconds is
counted, not written, and the next one that passes says how many were left out.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .ratelimit import ip_key

__all__ = [
    "IDLE_TIMEOUT",
    "LOG_INTERVAL",
    "PER_CLIENT",
    "REQUEST_TIMEOUT",
    "ConnectionGuard",
    "Throttle",
    "connection_limit",
    "guarded_protocol",
    "run",
]

REQUEST_TIMEOUT = 10.0  # seconds for a request's headers and body to arrive
IDLE_TIMEOUT = 5  # seconds a keep-alive connection may wait for its next request (uvicorn's)
PER_CLIENT = 32  # connections from one address; a browser opens at most 6
LOG_INTERVAL = 10.0  # seconds during which a repeated log message is counted, not written
BACKLOG = 32  # connections asyncio accepts in one go, before the guard has counted any of them
LISTEN_QUEUE = 2048  # connections the kernel queues: a burst waits there instead of losing its SYN
RESERVED_FILES = 100 + 4 * BACKLOG  # files kept free: accept() bursts in flight, the store, logs, mail, collection
MAX_TOTAL = 4096  # connections in all, however many files the system allows

log = logging.getLogger("digest.serve")


def connection_limit(reserve: int = RESERVED_FILES) -> int:
    """Connections in all that leave ``reserve`` open files free: the soft RLIMIT_NOFILE is first
    raised to the hard one (as systemd advises for programs that do not use select()); at least 8."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    files = soft if soft != resource.RLIM_INFINITY else MAX_TOTAL + reserve
    return max(8, min(MAX_TOTAL, files - reserve))


class ConnectionGuard:
    """The open connections, by age, in all and per peer address; decides who gets in."""

    def __init__(self, total: int, per_client: int = PER_CLIENT, trusted: Iterable[str] = ()) -> None:
        self.total, self.per_client = total, per_client
        self.trusted = set(trusted)
        self.open: OrderedDict[GuardedH11, str] = OrderedDict()  # oldest first
        self.by_client: dict[str, OrderedDict[GuardedH11, None]] = {}
        self.refused = 0

    def admit(self, conn: GuardedH11, client: str) -> bool:
        """Make room for ``conn`` from ``client`` (pushing out idle connections) and count it in;
        False when every connection in its way is busy, and ``conn`` must go."""
        mine = self.by_client.get(client, OrderedDict())
        trusted = client in self.trusted or "*" in self.trusted
        if not trusted and len(mine) >= self.per_client and not self._push_out(mine, "client"):
            return self._refuse(client, "connections from this address")
        if len(self.open) >= self.total and not self._push_out(self.open, "total"):
            return self._refuse(client, "connections in all")
        self.open[conn] = client
        self.by_client.setdefault(client, OrderedDict())[conn] = None
        return True

    def release(self, conn: GuardedH11) -> None:
        client = self.open.pop(conn, None)
        if client is None:
            return
        mine = self.by_client.get(client)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self.by_client[client]

    def _push_out(self, conns: Iterable[GuardedH11], cap: str) -> bool:
        oldest_idle = next((c for c in conns if c.idle()), None)
        if oldest_idle is None:
            return False
        log.warning("connection limit (%s): closed the oldest idle connection", cap)
        self.release(oldest_idle)
        oldest_idle.close()
        return True

    def _refuse(self, client: str, what: str) -> bool:
        self.refused += 1
        log.warning("connection refused: too many busy %s (%s)", what, client)
        return False


def guarded_protocol(guard: ConnectionGuard, request_timeout: float = REQUEST_TIMEOUT) -> type[GuardedH11]:
    """uvicorn's ``http=`` class: `GuardedH11` bound to ``guard``."""
    return type("GuardedH11", (GuardedH11,), {"guard": guard, "request_timeout": request_timeout})


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a request timeout and the guard's caps."""

    guard: ConnectionGuard
    request_timeout: float = REQUEST_TIMEOUT
    _deadline: asyncio.TimerHandle | None = None
    _admitted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else "unknown"
        if not self.guard.admit(self, ip_key(peer)):
            self.close()
            return
        self._admitted = True
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            if self._deadline is None and self.timeout_keep_alive_task is None:
                self._arm()  # the first byte of a request after a keep-alive pause
        else:
            self._disarm()  # the whole request is in

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self.guard.release(self)
        super().connection_lost(exc)

    def idle(self) -> bool:
        """No request of this connection is in the app (it waits for one, or reads one slowly)."""
        return self.cycle is None or self.cycle.response_complete

    def close(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self.close()


class Throttle(logging.Filter):
    """Lets one record per cause through every ``interval`` seconds and counts the rest: the next
    one through ends with "(N more like this in the last S s)". A cause is the logger, the message
    template and the exception's type; an `OSError` is written as one line, without its traceback
    (EMFILE from accept() says all it has to say in its errno)."""

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval, self.clock = interval, clock
        self._last: dict[tuple[Any, ...], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access":  # one line per request, asked for with --access-log
            return True
        kind = record.exc_info[0] if record.exc_info else None
        key = (record.name, record.levelno, str(record.msg), kind)
        now = self.clock()
        since, held = self._last.get(key, (float("-inf"), 0))
        if now - since < self.interval:
            self._last[key] = (since, held + 1)
            return False
        if len(self._last) > 1000:  # causes are few; a flood of distinct ones must not grow this
            self._last.clear()
        self._last[key] = (now, 0)
        if record.exc_info and isinstance(record.exc_info[1], OSError):
            record.msg = f"{record.getMessage()}: {record.exc_info[1]}"
            record.args, record.exc_info, record.exc_text = None, None, None
        if held:
            record.msg = f"{record.getMessage()} ({held} more like this in the last {now - since:.0f} s)"
            record.args = None
        return True


def run(app: Any, *, host: str, port: int, log_level: str, forwarded_allow_ips: str, **options: Any) -> None:
    """Serve ``app`` with uvicorn behind the guard, the timeouts and the throttled log (``options``
    go to `uvicorn.Config`)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(Throttle())
    proxies = [a.strip() for a in forwarded_allow_ips.split(",") if a.strip()]
    guard = ConnectionGuard(connection_limit(), trusted=proxies)
    log.info("at most %d connections, %d per client", guard.total, guard.per_client)
    log.debug(
        "keep-alive connections idle for %d s are closed; trusted proxies: %s",
        IDLE_TIMEOUT,
        ", ".join(proxies) or "none",
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(guard),
        timeout_keep_alive=IDLE_TIMEOUT,
        backlog=BACKLOG,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level,
        log_config=None,  # uvicorn's loggers go to the root handler and its throttle
        server_header=False,
        **options,
    )
    _Server(config).run()


class _Server(uvicorn.Server):
    """uvicorn's server with a long listen queue: asyncio gives the kernel the same small number
    it accepts in one go (`BACKLOG`), and a full queue drops a SYN, which the client resends
    only after a second; so the queue is made `LISTEN_QUEUE` long once the server listens."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for listening in server.sockets:
                with socket.fromfd(listening.fileno(), listening.family, listening.type) as same:
                    same.listen(LISTEN_QUEUE)

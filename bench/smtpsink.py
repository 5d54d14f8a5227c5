"""A local SMTP sink for the benchmarks: aiosmtpd in its own process, on 127.0.0.1 only.

It accepts every message (``250`` after the final dot, as a real server) and keeps only counters:
messages, bytes, distinct recipients, connections, and the sink process's CPU seconds, which are
read (and reset) over a pipe. It runs in a separate process (``multiprocessing`` spawn) so that it
does not share the sending process's GIL; on a 2-core machine it still competes for the cores
(``sink_cpu_s``). aiosmtpd reads message data one line at a time in Python, so a large message
costs the sink real CPU.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from .common import stop_child

__all__ = ["SmtpSink"]


class _Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.connections = 0
        self.recipients: set[str] = set()
        self.cpu_start = time.process_time()

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "connections": self.connections,
            "recipients": len(self.recipients),
            "cpu_s": round(time.process_time() - self.cpu_start, 3),
        }


class _Handler:
    def __init__(self, counters: _Counters) -> None:
        self.counters = counters

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.counters.messages += 1
        self.counters.bytes += len(envelope.original_content or b"")
        self.counters.recipients.update(a.lower() for a in envelope.rcpt_tos)
        return "250 2.0.0 Queued"


def _serve(conn: Connection) -> None:
    from aiosmtpd.smtp import SMTP

    counters = _Counters()
    handler = _Handler(counters)

    class _Counting(SMTP):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            counters.connections += 1
            super().connection_made(transport)  # type: ignore[arg-type]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Counting(handler, hostname="sink.bench.invalid", decode_data=False, enable_SMTPUTF8=True),
            "127.0.0.1",
            0,
            backlog=512,
        )
        port = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()

        def command() -> None:
            try:
                what = conn.recv()
            except EOFError:
                stop.set()
                return
            if what == "stop":
                stop.set()
                return
            conn.send(counters.as_dict())
            if what == "reset":
                counters.reset()

        loop.add_reader(conn.fileno(), command)
        conn.send(port)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        server.close()

    asyncio.run(main())


class SmtpSink:
    """``with SmtpSink() as sink:`` serves on ``sink.port``; ``sink.stats(reset=...)`` reads the counters."""

    def __init__(self) -> None:
        self.port = 0
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> SmtpSink:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._conn = parent
        self._process = ctx.Process(target=_serve, args=(child,), name="bench-smtp-sink", daemon=True)
        self._process.start()
        child.close()
        if not parent.poll(60):
            self.__exit__(None, None, None)
            raise RuntimeError("the benchmark SMTP sink did not start within 60 s")
        self.port = int(parent.recv())
        return self

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stats(self, *, reset: bool = False) -> dict[str, Any]:
        """Messages, bytes, distinct recipients, connections and CPU seconds since the last reset."""
        assert self._conn is not None
        self._conn.send("reset" if reset else "stats")
        if not self._conn.poll(30):
            raise RuntimeError("the benchmark SMTP sink did not answer")
        return dict(self._conn.recv())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stop_child(self._conn, self._process)
        self._conn = self._process = None

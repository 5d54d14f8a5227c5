"""A fast local feed server for the benchmarks: raw asyncio HTTP/1.1 in its own process.

It listens on 127.0.0.1 only, on several ports at once: each port stands for one Mastodon
server (a "host"), because digest limits requests per host (``[collect] per_host``) and real
accounts live on many servers. Every response (200 or 304) waits ``latency`` seconds first, as
a distant server would; responses keep the connection alive (HTTP/1.1), carry ``ETag`` and
``Last-Modified``, answer ``If-None-Match`` / ``If-Modified-Since`` with ``304``, and are gzipped
(precompressed once) when the client accepts it, as nginx in front of Mastodon does.

It runs in a separate process (``multiprocessing`` spawn) so that it does not share the
measuring process's GIL; it still competes with it for the machine's cores.

``GET /__stats`` (no latency) answers JSON counters: requests by status, the most requests
in flight at once, connections opened, and the server process's CPU seconds;
``/__stats?reset=1`` zeroes them.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import httpx

from .common import stop_child
from .mastodon_rss import feed_path, make_feed

__all__ = ["FeedServer", "ServerStats"]

_REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found", 400: "Bad Request"}


@dataclass(slots=True)
class _Doc:
    etag: str
    last_modified: str
    plain: bytes  # full response: head + body
    gzipped: bytes
    not_modified: bytes


@dataclass(slots=True)
class ServerStats:
    """Counters kept by the server process."""

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    cpu_s: float = 0.0
    cpu_start: float = 0.0

    def reset(self) -> None:
        self.requests, self.by_status, self.max_in_flight, self.connections = 0, {}, self.in_flight, 0
        self.cpu_start = time.process_time()

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "max_in_flight": self.max_in_flight,
            "connections": self.connections,
            "cpu_s": round(time.process_time() - self.cpu_start, 3),
        }


def _head(status: int, headers: Sequence[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}", "Server: bench-feeds", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _prepare(body: bytes, etag: str, last_modified: str) -> _Doc:
    common = [
        ("Content-Type", "application/rss+xml; charset=utf-8"),
        ("ETag", etag),
        ("Last-Modified", last_modified),
        ("Cache-Control", "max-age=0, public"),
        ("Vary", "Accept-Encoding"),
    ]
    packed = gzip.compress(body, compresslevel=6, mtime=0)
    return _Doc(
        etag,
        last_modified,
        _head(200, common, len(body)) + body,
        _head(200, [*common, ("Content-Encoding", "gzip")], len(packed)) + packed,
        _head(304, [("ETag", etag), ("Last-Modified", last_modified), ("Vary", "Accept-Encoding")], 0),
    )


def _simple(status: int, body: bytes, content_type: str = "text/plain") -> bytes:
    return _head(status, [("Content-Type", content_type)], len(body)) + body


class _App:
    def __init__(self, docs: dict[str, _Doc], latency: float) -> None:
        self.docs = docs
        self.latency = latency
        self.stats = ServerStats(cpu_start=time.process_time())

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request, *lines = head.decode("latin-1").split("\r\n")
                parts = request.split(" ")
                if len(parts) != 3:
                    writer.write(_simple(400, b"bad request"))
                    return
                target, version = parts[1], parts[2]
                headers: dict[str, str] = {}
                for line in lines:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = headers.get("content-length", "0")
                if length.isdigit() and int(length):
                    await reader.readexactly(int(length))
                response = await self.respond(target, headers)
                writer.write(response)
                await writer.drain()
                if version != "HTTP/1.1" or headers.get("connection", "").lower() == "close":
                    return
        except ConnectionError:
            return
        finally:
            writer.close()

    async def respond(self, target: str, headers: dict[str, str]) -> bytes:
        path, _, query = target.partition("?")
        if path == "/__stats":
            data = self.stats.as_dict()
            if "reset=1" in query:
                self.stats.reset()
            return _simple(200, json.dumps(data).encode(), "application/json")
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            stats.in_flight -= 1
        doc = self.docs.get(path)
        if doc is None:
            status, response = 404, _simple(404, b"not found")
        elif _fresh(doc, headers):
            status, response = 304, doc.not_modified
        elif "gzip" in headers.get("accept-encoding", ""):
            status, response = 200, doc.gzipped
        else:
            status, response = 200, doc.plain
        stats.requests += 1
        stats.by_status[str(status)] = stats.by_status.get(str(status), 0) + 1
        return response


def _fresh(doc: _Doc, headers: dict[str, str]) -> bool:
    match = headers.get("if-none-match")
    if match is not None:
        return doc.etag in (m.strip() for m in match.split(",")) or match.strip() == "*"
    since = headers.get("if-modified-since")
    return since is not None and since == doc.last_modified


def _serve(feeds: int, hosts: int, seed: int, now: float, latency: float, conn: Connection) -> None:
    """The server process: build the documents, listen, report the ports, serve until told to stop."""
    when = datetime.fromtimestamp(now, UTC)
    docs: dict[str, _Doc] = {}
    for i in range(feeds):
        feed = make_feed(i, host_index=i % hosts, seed=seed, now=when)
        docs[feed.path] = _prepare(feed.body, feed.etag, feed.last_modified)
    app = _App(docs, latency)

    async def main() -> None:
        servers = [await asyncio.start_server(app.handle, "127.0.0.1", 0, backlog=1024) for _ in range(hosts)]
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), stop.set)
        conn.send(ports)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        for server in servers:
            server.close()

    asyncio.run(main())


class FeedServer:
    """Serve ``feeds`` generated Mastodon feeds over ``hosts`` ports; use as a context manager.

    ``urls[i]`` is feed ``i``'s URL; feed ``i`` lives on port ``i % hosts``, so consecutive feeds
    are on different hosts.
    """

    def __init__(self, feeds: int, *, hosts: int, latency: float = 0.05, seed: int = 1, now: datetime) -> None:
        self.feeds, self.hosts, self.latency, self.seed, self.now = feeds, hosts, latency, seed, now
        self.urls: list[str] = []
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def docs(self) -> list[bytes]:
        """The documents' bytes, generated again here (identical to what the server sends)."""
        return [make_feed(i, host_index=i % self.hosts, seed=self.seed, now=self.now).body for i in range(self.feeds)]

    def __enter__(self) -> FeedServer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._conn = parent
        self._process = ctx.Process(
            target=_serve,
            args=(self.feeds, self.hosts, self.seed, self.now.timestamp(), self.latency, child),
            name="bench-feed-server",
            daemon=True,
        )
        self._process.start()
        child.close()
        if not parent.poll(120):
            self.__exit__(None, None, None)
            raise RuntimeError("the benchmark feed server did not start within 120 s")
        ports: list[int] = parent.recv()
        self.urls = [f"http://127.0.0.1:{ports[i % self.hosts]}{feed_path(i, self.seed)}" for i in range(self.feeds)]
        self._stats_url = f"http://127.0.0.1:{ports[0]}/__stats"
        return self

    def stats(self, *, reset: bool = False) -> dict[str, Any]:
        """The server's counters (see the module docstring); ``reset`` zeroes them after reading."""
        response = httpx.get(self._stats_url + ("?reset=1" if reset else ""), timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stop_child(self._conn, self._process)
        self._conn = self._process = None

"""A real HTTP/1.1 server on 127.0.0.1 for tests: routes, canned answers, a request log.

The collectors talk HTTP, so their tests talk to a real socket rather than a mocked
transport: redirects, conditional GETs, ``Retry-After``, truncated and oversized bodies
and gzip bombs all go through the same code path as in production.

    server = TestServer()
    server.route("/feed.xml", Response(body=b"<rss/>", etag='"v1"'))
    httpx.get(server.url("/feed.xml"))        # 200, ETag: "v1"
    server.hits("/feed.xml")                  # 1
    server.close()

Routing is by exact path. A route registered with a query (``"/api?page=2"``) is tried
first, then the bare path, so a test can answer one page specially and the rest alike.
Unknown paths answer 404. `Response` describes one answer; `Response.sequence` answers
successive requests in turn (the last one repeats) and `Response.callable` computes an
answer from the request.

The server is quiet: client disconnects print nothing. An exception raised by a test's
``callable`` answers 500 and is kept in `TestServer.errors` (the ``http_server`` fixture
fails the test if any is left). `TestServer.close` returns promptly even while slow
handlers (``delay``, ``stream_bytes``) are in flight.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl

__all__ = [
    "GZIP_BOMB_SIZE",
    "Headers",
    "Recorded",
    "Response",
    "TestServer",
    "gzip_bomb",
]

GZIP_BOMB_SIZE = 1 << 30
"""How many bytes `gzip_bomb` inflates to: 1 GiB of zeros."""

_CHUNK = 64 * 1024


class Headers(Mapping[str, str]):
    """Request headers as a read-only, case-insensitive mapping.

    A repeated field's values are joined with ``", "``.
    """

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                value = f"{self._items[key][1]}, {value}"
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes = b""

    @property
    def params(self) -> dict[str, str]:
        """The query string as a dict; for a repeated name the last value wins."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def target(self) -> str:
        """Path and query as sent: ``/api/v1/timelines/tag/HITsm?max_id=5``."""
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass
class Response:
    """One canned answer: ``body``, ``status``, ``headers`` and optional behaviours.

    ``etag`` / ``last_modified``
        Sent as ``ETag`` / ``Last-Modified``. A GET or HEAD whose ``If-None-Match``
        matches the ETag gets ``304 Not Modified`` with no body; so does one without
        ``If-None-Match`` whose ``If-Modified-Since`` equals ``last_modified`` exactly.
    ``delay``
        Seconds to wait before answering (cut short, unanswered, by `TestServer.close`).
    ``redirect_to``
        Sent as ``Location``; a ``status`` left at 200 becomes 302.
    ``retry_after``
        Sent as ``Retry-After`` (seconds or an HTTP date, as given).
    ``sequence``
        Successive requests to the route get successive responses; the last repeats.
        Each item is answered as it is (an item's own ``sequence`` is not consulted).
    ``content_length``
        Announced instead of ``len(body)``: a larger value simulates a truncated answer
        (the body is sent, then the connection is closed).
    ``stream_bytes``
        After ``body``, this many bytes of filler (``x``) are streamed with chunked
        transfer coding and no ``Content-Length``: an oversized or endless body that is
        never held in memory.
    ``gzip_bomb``
        The body is `gzip_bomb()` (about 1 MB on the wire, `GZIP_BOMB_SIZE` inflated),
        sent with ``Content-Encoding: gzip``.
    ``callable``
        Called with the `Recorded` request; the `Response` it returns is answered
        instead (API paging). An exception it raises is answered 500 and kept in
        `TestServer.errors`.
    """

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0
    redirect_to: str | None = None
    retry_after: str | None = None
    sequence: list[Response] | None = None
    content_length: int | None = None
    stream_bytes: int | None = None
    gzip_bomb: bool = False
    callable: Callable[[Recorded], Response] | None = None

    def not_modified(self, request: Recorded) -> bool:
        """Whether a conditional GET or HEAD may be answered 304."""
        if request.method not in ("GET", "HEAD") or self.status != 200:
            return False
        if self.etag is not None and "If-None-Match" in request.headers:
            tags = {t.strip().removeprefix("W/") for t in request.headers["If-None-Match"].split(",")}
            return "*" in tags or self.etag.removeprefix("W/") in tags
        if self.last_modified is not None and "If-Modified-Since" in request.headers:
            return request.headers["If-Modified-Since"] == self.last_modified
        return False


@cache
def gzip_bomb() -> bytes:
    """A gzip member of about 1 MB that inflates to `GZIP_BOMB_SIZE` zero bytes.

    Built once, in a fraction of a second and without holding the inflated data: one MiB
    of zeros is deflated with a full flush (which byte-aligns the output and resets the
    window), so every MiB deflates to the same bytes: the stream is that block repeated.
    """
    mib = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(mib) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(GZIP_BOMB_SIZE >> 20):
        crc = zlib.crc32(mib, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, GZIP_BOMB_SIZE & 0xFFFFFFFF)
    return header + block * (GZIP_BOMB_SIZE >> 20) + deflate.flush(zlib.Z_FINISH) + trailer


class _Route:
    """A registered response and, for a ``sequence``, how far through it it has got."""

    def __init__(self, response: Response) -> None:
        self.response = response
        self.served = 0
        self.lock = threading.Lock()

    def next(self) -> Response:
        with self.lock:
            index = self.served
            self.served += 1
        sequence = self.response.sequence
        if not sequence:
            return self.response
        return sequence[min(index, len(sequence) - 1)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: TestServer

    def __init__(self, owner: TestServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        """Bind without `HTTPServer.server_bind`'s ``getfqdn`` (a reverse lookup)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients hanging up; keep any other error in `TestServer.errors`."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.owner.errors.append(error)

    def drop_connections(self) -> None:
        """Wake every handler blocked on a socket so its thread ends now."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "digest-testserver/1"
    sys_version = ""
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the request log is `TestServer.requests`."""

    def do_GET(self) -> None:
        self._answer()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _answer(self) -> None:
        try:
            request = self._record()
            response = self.server.owner._resolve(request)
            if response is None:
                self._send(
                    404,
                    {"Content-Type": "text/plain"},
                    b"no route for " + request.path.encode(),
                )
                return
            self._reply(request, response)
        except OSError:  # the client hung up, or close() dropped the connection
            self.close_connection = True

    def _record(self) -> Recorded:
        path, _, query = self.path.partition("?")
        request = Recorded(
            self.command,
            path,
            query,
            Headers(list(self.headers.items())),
            self._read_body(),
        )
        self.server.owner._log(request)
        return request

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, request: Recorded, response: Response) -> None:
        if response.delay and self.server.owner._closing.wait(response.delay):
            self.close_connection = True
            return
        headers = dict(response.headers)
        status = response.status
        if response.etag is not None:
            headers["ETag"] = response.etag
        if response.last_modified is not None:
            headers["Last-Modified"] = response.last_modified
        if response.retry_after is not None:
            headers["Retry-After"] = response.retry_after
        if response.redirect_to is not None:
            headers["Location"] = response.redirect_to
            status = 302 if status == 200 else status
        if response.not_modified(request):
            self._send(304, headers, b"", content_length=None)
            return
        body = response.body
        if response.gzip_bomb:
            body = gzip_bomb()
            headers["Content-Encoding"] = "gzip"
        if response.stream_bytes is not None:
            self._stream(request, status, headers, body, response.stream_bytes)
            return
        self._send(
            status,
            headers,
            body,
            content_length=response.content_length,
            head=request.method == "HEAD",
        )

    def _send(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        *,
        content_length: int | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header(
                "Content-Length",
                str(len(body) if content_length is None else content_length),
            )
        self.end_headers()
        if not head:
            self.wfile.write(body)
        if content_length is not None and content_length != len(body):
            self.wfile.flush()
            self.close_connection = True

    def _stream(
        self,
        request: Recorded,
        status: int,
        headers: dict[str, str],
        body: bytes,
        filler: int,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if request.method == "HEAD":
            return
        closing = self.server.owner._closing
        chunk = b"x" * _CHUNK
        if body:
            self._write_chunk(body)
        while filler > 0 and not closing.is_set():
            piece = chunk[: min(filler, _CHUNK)]
            self._write_chunk(piece)
            filler -= len(piece)
        if closing.is_set():
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


class TestServer:
    """A started HTTP/1.1 server on an ephemeral port of 127.0.0.1.

    Use it as a context manager, or call `close`.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        """Exceptions from ``callable`` responses (each answered 500) or the server."""
        self._routes: dict[str, _Route] = {}
        self._log_entries: list[Recorded] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"TestServer:{port}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TestServer({self.base_url!r}, routes={sorted(self._routes)!r})"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def route(self, path: str, response: Response) -> None:
        """Answer requests for ``path`` (or ``path?query``) with ``response``.

        Registering a path again replaces its route and restarts its ``sequence``.
        """
        with self._lock:
            self._routes[path] = _Route(response)

    def requests(self, path: str | None = None) -> list[Recorded]:
        """The requests received so far, oldest first; only those for ``path`` if given.

        A ``path`` with a ``?`` must match path and query exactly; without one, any
        query matches.
        """
        with self._lock:
            entries = list(self._log_entries)
        if path is None:
            return entries
        if "?" in path:
            return [r for r in entries if r.target == path]
        return [r for r in entries if r.path == path]

    def hits(self, path: str) -> int:
        """How many requests ``path`` has received (matched as in `requests`)."""
        return len(self.requests(path))

    def close(self) -> None:
        """Stop serving and drop open connections; slow handlers give up at once.

        Safe to call twice.
        """
        if self._closing.is_set():
            return
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        self._thread.join(timeout=5)
        deadline = time.monotonic() + 2
        while self._server.connections and time.monotonic() < deadline:
            time.sleep(0.005)  # handlers woken by drop_connections are finishing

    def _log(self, request: Recorded) -> None:
        with self._lock:
            self._log_entries.append(request)

    def _resolve(self, request: Recorded) -> Response | None:
        with self._lock:
            route = self._routes.get(request.target) or self._routes.get(request.path)
        if route is None:
            return None
        response = route.next()
        try:
            while response.callable is not None:
                response = response.callable(request)
        except Exception as error:  # a bug in the test's callable: answer 500, keep it
            self.errors.append(error)
            return Response(
                status=500,
                body=traceback.format_exc().encode(),
                headers={"Content-Type": "text/plain"},
            )
        return response

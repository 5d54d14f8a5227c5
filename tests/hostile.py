"""A hostile HTTP server on 127.0.0.1: every way a feed server can waste a collector's time or memory.

Each path is one behaviour, written on a raw socket so that it can break HTTP itself (drip the
status line, never answer, send a megabyte of headers, reset the connection):

    with HostileServer(drip=0.2) as server:
        server.url("/slowloris-body")        # headers at once, then one byte every ``drip`` seconds
        HOSTILE                               # every path it serves

`TestServer.close`-like: `close` wakes every handler (drips wait on an event, not a sleep), so
a test never waits for a slow answer to finish.

Run as a script, it serves the hostile corpus at full size for a measurement (see the README's
"How collection behaves"): this server, good feeds on a second server, and the shared real-world
feed documents, and writes a feeds.toml with default [collect] settings naming them all:

    python tests/hostile.py --good 2200 --out /tmp/hostile     # prints the config path, serves until ^C
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).parent))

from httpserver import Response, TestServer, gzip_bomb

__all__ = ["BEHAVIOURS", "HOSTILE", "READABLE", "SLOW", "HostileServer", "corpus_sources", "good_feed"]

RSS_TYPE = "application/rss+xml"
TINY_FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<rss version="2.0"><channel><title>&lol9;</title></channel></rss>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&x;</title><item><title>x&x;x</title><link>https://xxe.example/1</link>
<description>y&x;y</description></item></channel></rss>"""

SLOW = ("/slowloris-body", "/slowloris-headers", "/silent")
"""The paths that only a timeout ends (the rest fail fast)."""


def good_feed(n: int, items: int = 2) -> bytes:
    """A small, valid RSS 2.0 feed with ``items`` posts, distinct per ``n``."""
    entries = "".join(
        f"<item><title>Good {n}.{i}</title><link>https://good.example/{n}/{i}</link>"
        f"<guid>https://good.example/{n}/{i}</guid><pubDate>Fri, 20 Nov 2026 10:00:00 GMT</pubDate>"
        f"<description>FHIR interoperability note {n}.{i}</description></item>"
        for i in range(items)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Good {n}</title>'
        f"<link>https://good.example/{n}/</link>{entries}</channel></rss>"
    ).encode()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1].decode("latin-1").split("?")[0] if head.count(b" ") >= 2 else "/"
            behaviour = BEHAVIOURS.get(path)
            if behaviour is None:
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            behaviour(self.server, sock)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            self.request.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, drip: float) -> None:
        self.drip = drip
        self.closing = threading.Event()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up on a hostile answer is the point: stay quiet."""


def _drip(server: _Server, sock: socket.socket, data: bytes) -> None:
    """Send ``data`` one byte per ``drip`` seconds, again and again, until the client or the server gives up."""
    while not server.closing.wait(server.drip):
        for byte in data:
            sock.sendall(bytes([byte]))
            if server.closing.wait(server.drip):
                return


def _answer(status: str, headers: dict[str, str], body: bytes = b"", *, length: int | None = None) -> bytes:
    fields = {"Content-Length": str(len(body) if length is None else length), "Connection": "close", **headers}
    return (
        f"HTTP/1.1 {status}\r\n".encode()
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in fields.items())
        + b"\r\n"
        + body
    )


def _send(data: bytes) -> Callable[[_Server, socket.socket], None]:
    return lambda server, sock: sock.sendall(data)


def _slowloris_body(server: _Server, sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nTransfer-Encoding: chunked\r\n\r\n")
    _drip(server, sock, b"1\r\n<\r\n")


def _slowloris_headers(server: _Server, sock: socket.socket) -> None:
    _drip(server, sock, b"HTTP/1.1 200 OK\r\nX-Drip: ")


def _silent(server: _Server, sock: socket.socket) -> None:
    server.closing.wait()


def _endless(server: _Server, sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"<" * 65536)
    while not server.closing.is_set():
        sock.sendall(chunk)


def _reset(server: _Server, sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST


BEHAVIOURS: dict[str, Callable[[_Server, socket.socket], None]] = {
    "/slowloris-body": _slowloris_body,
    "/slowloris-headers": _slowloris_headers,
    "/silent": _silent,
    "/endless": _endless,
    "/reset": _reset,
    "/redirect-loop": _send(_answer("302 Found", {"Location": "/redirect-loop"})),
    "/redirect-ping": _send(_answer("301 Moved Permanently", {"Location": "/redirect-pong"})),
    "/redirect-pong": _send(_answer("301 Moved Permanently", {"Location": "/redirect-ping"})),
    "/redirect-nowhere": _send(_answer("302 Found", {"Location": "http://[::1"})),
    "/huge-header": _send(_answer("200 OK", {"Content-Type": RSS_TYPE, "X-Huge": "a" * 1_000_000}, TINY_FEED)),
    "/many-headers": _send(
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100_000)) + b"Content-Length: 0\r\n\r\n"
    ),
    "/html": _send(_answer("200 OK", {"Content-Type": "text/html"}, b"<!doctype html><html><body>hi</body></html>")),
    "/png": _send(_answer("200 OK", {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)),
    "/json-not-a-feed": _send(_answer("200 OK", {"Content-Type": "application/json"}, b'{"hello": "world"}')),
    "/json-broken": _send(_answer("200 OK", {"Content-Type": "application/feed+json"}, b'{"version": "https://json')),
    "/binary-as-xml": _send(_answer("200 OK", {"Content-Type": "application/xml"}, bytes(range(256)) * 64)),
    "/empty": _send(_answer("200 OK", {"Content-Type": RSS_TYPE})),
    "/gzip-bomb": _send(_answer("200 OK", {"Content-Type": RSS_TYPE, "Content-Encoding": "gzip"}, gzip_bomb())),
    "/corrupt-gzip": _send(_answer("200 OK", {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage" * 100)),
    "/unknown-encoding": _send(_answer("200 OK", {"Content-Encoding": "zstd-ish"}, b"x" * 100)),
    "/declared-huge": _send(_answer("200 OK", {"Content-Type": RSS_TYPE}, b"<rss>", length=10**12)),
    "/truncated": _send(_answer("200 OK", {"Content-Type": RSS_TYPE}, b"<rss version='2.0'>", length=5000)),
    "/garbage-status": _send(b"HTTP/1.1 two hundred OK\r\n\r\n"),
    "/not-http": _send(b"SSH-2.0-OpenSSH_9.6\r\n"),
    "/billion-laughs": _send(_answer("200 OK", {"Content-Type": RSS_TYPE}, BILLION_LAUGHS)),
    "/xxe": _send(_answer("200 OK", {"Content-Type": RSS_TYPE}, XXE)),
    "/always-500": _send(_answer("500 Internal Server Error", {})),
    "/retry-tomorrow": _send(_answer("429 Too Many Requests", {"Retry-After": "86400"})),
    "/gone": _send(_answer("410 Gone", {})),
    "/missing": _send(_answer("404 Not Found", {})),
}
READABLE = ("/xxe",)
"""Paths whose answer is a feed after all: read, with the external entity left unresolved."""
HOSTILE = tuple(p for p in BEHAVIOURS if p not in READABLE)
"""Every other path the hostile server serves: each one a source that must fail, and be named."""


class HostileServer:
    """The hostile server, started on an ephemeral port of 127.0.0.1; a context manager."""

    __test__ = False

    def __init__(self, drip: float = 1.0) -> None:
        self._server = _Server(drip)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and wake every handler: drips and silences end at once."""
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
        with self._server.lock:
            for sock in list(self._server.sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


def corpus_sources(hostile: HostileServer, good: TestServer, feeds: int, real: list[Path]) -> str:
    """The [[sources]] of the hostile corpus: every hostile path, ``feeds`` good feeds, and the
    real feed documents ``real`` (served by ``good``)."""
    urls = [hostile.url(p) for p in BEHAVIOURS]
    for n in range(feeds):
        good.route(f"/good/{n}.xml", Response(good_feed(n), headers={"Content-Type": RSS_TYPE}))
        urls.append(good.url(f"/good/{n}.xml"))
    for i, path in enumerate(real):
        good.route(f"/real/{i}/{path.name}", Response(path.read_bytes(), headers={"Content-Type": "application/xml"}))
        urls.append(good.url(f"/real/{i}/{path.name}"))
    return "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in urls)


def _main() -> None:
    parser = argparse.ArgumentParser(description="Serve the hostile corpus and write a feeds.toml naming it.")
    parser.add_argument("--good", type=int, default=2200, help="How many good feeds (default 2200).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for feeds.toml and its database.")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/feeds")
    args = parser.parse_args()
    real = (
        sorted(p for p in args.shared.rglob("*") if p.is_file() and p.name != "README.md")
        if args.shared.is_dir()
        else []
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with HostileServer() as hostile, TestServer() as good:
        body = corpus_sources(hostile, good, args.good, real)
        path = args.out / "feeds.toml"
        path.write_text(body, encoding="utf-8")
        count = body.count("[[sources]]")
        print(f"{path}: {count} sources ({len(BEHAVIOURS)} hostile, {args.good} good, {len(real)} real)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    _main()

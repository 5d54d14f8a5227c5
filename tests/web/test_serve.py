"""``digest serve`` under slow and idle clients: the real command in a subprocess with few open files,
attacked over loopback, and the guard, the request timeout and the log throttle on their own."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from digest.ratelimit import ip_key
from digest.serving import ConnectionGuard, Throttle, guarded_protocol

FILES = 256  # the open-file limit the server runs with; the attack opens more connections than this
CONFIG = """
[digest]
title = "t"

[subscription]
public_url = "https://digest.example.org"
secret = "${DIGEST_SECRET}"

[[topics]]
name = "Interoperability"
description = "Exchanging health data between systems."
keywords = ["FHIR"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int, source: str = "127.0.0.1") -> int:
    """/healthz's status, with 5 s as a liveness bound (an answer at all is what is asserted)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def wait_until_up(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        assert process.poll() is None, "digest serve exited"
        try:
            if healthz(port) == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("digest serve did not start")


def slow_connections(count: int, port: int, source: str) -> list[socket.socket]:
    """``count`` connections that send nothing, or a request line and then a header a byte at a time."""
    opened = []
    for i in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.bind((source, 0))
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        opened.append(s)
        if i % 2:
            trickle([s], b"GET / HTTP/1.1\r\nHost: x\r\n")
    return opened


def trickle(conns: list[socket.socket], data: bytes = b"X") -> None:
    for s in conns:
        with contextlib.suppress(OSError):  # refused or closed by the server: what it is meant to do
            s.send(data)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    (tmp_path / "feeds.toml").write_text(CONFIG)
    log_file = tmp_path / "serve.log"
    port = free_port()
    env = {**os.environ, "DIGEST_SECRET": "serve-test-secret-0123456789abcdef"}

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILES, FILES))

    with log_file.open("wb") as out:
        command = [sys.executable, "-m", "digest", "--config", str(tmp_path / "feeds.toml")]
        process = subprocess.Popen(
            [*command, "serve", "--no-schedule", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            preexec_fn=few_files,
        )
    try:
        wait_until_up(port, process)
        yield port, log_file
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_healthz_answers_throughout_an_attack_of_more_idle_connections_than_open_files(
    serve: tuple[int, Path],
) -> None:
    port, log_file = serve
    attack = []
    answers = []
    try:
        for round_ in range(3):
            # 127.0.0.1 is the default trusted proxy (only the total binds it); 127.0.0.2 is one client.
            attack += slow_connections(FILES + 50, port, "127.0.0.1")
            attack += slow_connections(FILES // 2, port, "127.0.0.2")
            for _ in range(5):
                trickle(attack[round_::3])
                answers.append(healthz(port, "127.0.0.1"))
                answers.append(healthz(port, "127.0.0.2"))  # the attacking client itself gets in too
    finally:
        for s in attack:
            s.close()
    assert answers == [200] * 30
    lines = log_file.read_text(errors="replace").splitlines()
    assert "Traceback (most recent call last):" not in lines
    assert len(lines) < 30, lines  # one line per cause per interval, whatever the attack's size


# -- the pieces, in process --------------------------------------------------------------------------


class FakeConn:
    def __init__(self, busy: bool = False) -> None:
        self.busy, self.closed = busy, False

    def idle(self) -> bool:
        return not self.busy

    def close(self) -> None:
        self.closed = True


def test_a_client_over_its_cap_loses_its_oldest_idle_connection_and_a_busy_one_is_kept() -> None:
    guard = ConnectionGuard(total=100, per_client=2)
    busy, idle, newer = FakeConn(busy=True), FakeConn(), FakeConn()
    assert guard.admit(busy, "a") and guard.admit(idle, "a")  # type: ignore[arg-type]
    assert guard.admit(newer, "a")  # type: ignore[arg-type]
    assert idle.closed and not busy.closed and list(guard.by_client["a"]) == [busy, newer]
    assert guard.admit(FakeConn(), "b")  # type: ignore[arg-type]  # another client is not affected
    newer.busy = True
    refused = FakeConn()
    assert not guard.admit(refused, "a")  # type: ignore[arg-type]  # every one of a's is busy
    assert guard.refused == 1 and refused not in guard.open


def test_the_total_cap_pushes_out_the_oldest_idle_connection_and_trusted_proxies_have_no_client_cap() -> None:
    guard = ConnectionGuard(total=3, per_client=1, trusted=["127.0.0.1"])
    first, second, third = FakeConn(), FakeConn(), FakeConn()
    for conn in (first, second, third):
        assert guard.admit(conn, "127.0.0.1")  # type: ignore[arg-type]
    assert not any(c.closed for c in (first, second, third))
    assert guard.admit(FakeConn(), "203.0.113.9")  # type: ignore[arg-type]
    assert first.closed and len(guard.open) == 3
    for conn in list(guard.open):
        guard.release(conn)
    assert not guard.open and not guard.by_client


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:203.0.113.7") == "203.0.113.7" and ip_key("203.0.113.7") == "203.0.113.7"


def test_the_log_throttle_writes_one_line_per_cause_per_interval_with_a_count() -> None:
    now = [0.0]
    throttle = Throttle(interval=10, clock=lambda: now[0])

    def record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, info)

    emfile = OSError(24, "Too many open files")
    first = record("socket.accept() out of system resource", emfile)
    assert throttle.filter(first) and first.exc_info is None
    assert first.getMessage() == "socket.accept() out of system resource: [Errno 24] Too many open files"
    passed = [throttle.filter(record("socket.accept() out of system resource", emfile)) for _ in range(500)]
    assert not any(passed)
    assert throttle.filter(record("another cause"))  # a different cause is not held back
    now[0] = 11.0
    later = record("socket.accept() out of system resource", emfile)
    assert throttle.filter(later) and "(500 more like this in the last 11 s)" in later.getMessage()


@pytest.fixture
def guarded_server() -> Iterator[int]:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    app = Starlette(routes=[Route("/", hello)])
    port = free_port()
    guard = ConnectionGuard(total=50)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=guarded_protocol(guard, request_timeout=0.5), log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def closed_by_server(s: socket.socket) -> bool:
    """True when the server closes ``s`` (it reads EOF; 5 s is a liveness bound)."""
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_connection_that_sends_nothing_or_its_headers_slowly_is_closed(guarded_server: int) -> None:
    silent = socket.create_connection(("127.0.0.1", guarded_server))
    slow = socket.create_connection(("127.0.0.1", guarded_server))
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    try:
        assert closed_by_server(silent) and closed_by_server(slow)
    finally:
        silent.close()
        slow.close()


def test_a_slow_request_after_a_keep_alive_answer_is_closed_too(guarded_server: int) -> None:
    with socket.create_connection(("127.0.0.1", guarded_server)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET / HTTP/1.1\r\n")  # the next request starts, and never ends
        assert closed_by_server(s)


@pytest.mark.parametrize(
    ("flags", "shown", "hidden"),
    [
        ([], [], ["INFO", "DEBUG"]),  # --log-level warning on its own: quiet
        (["-v"], ["INFO uvicorn.error: Uvicorn running on http://127.0.0.1:"], ["DEBUG"]),
        (["-vv"], ["DEBUG digest.serve: keep-alive connections idle for 5 s", "INFO digest.serve: at most"], []),
    ],
)
def test_the_global_verbose_flag_reaches_serves_log_over_its_log_level(
    tmp_path: Path, flags: list[str], shown: list[str], hidden: list[str]
) -> None:
    (tmp_path / "feeds.toml").write_text(CONFIG)
    port, log_file = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "DIGEST_SECRET": "serve-test-secret-0123456789abcdef"}
    command = [sys.executable, "-m", "digest", *flags, "--config", str(tmp_path / "feeds.toml")]
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [*command, "serve", "--no-schedule", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        wait_until_up(port, process)
    finally:
        process.terminate()
        code = process.wait(timeout=30)
    log = log_file.read_text(encoding="utf-8")
    assert code in (0, -15), log  # SIGTERM is a clean stop: uvicorn finishes, then exits as the signal asked
    assert log.startswith("serving the subscription pages on http://127.0.0.1:"), log
    assert "Traceback" not in log
    for line in shown:
        assert line in log, log
    for level in hidden:
        assert f" {level} " not in log, log
    if flags:
        assert "INFO uvicorn.error: Finished server process" in log  # it stopped cleanly, and said so

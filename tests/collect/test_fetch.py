"""The HTTP client against a real server on 127.0.0.1: limits, conditional GETs, redirects,
status codes, retries and body caps."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest
from httpserver import Response, TestServer

from digest import __version__
from digest.collect.fetch import Fetcher, FetchResult, parse_retry_after
from digest.config import CollectSettings
from digest.errors import FetchError, PermanentFetchError, TransientFetchError

FAST = CollectSettings(connect_timeout=2, read_timeout=2, total_timeout=5, retries=2, max_retry_after=2)


def fetch(url: str, settings: CollectSettings = FAST, **kwargs: str) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(settings) as fetcher:
            return await fetcher.get(url, **kwargs)

    return asyncio.run(go())


def test_body_and_validators_come_back(http_server: TestServer) -> None:
    http_server.route(
        "/f",
        Response(
            b"<rss/>",
            etag='"v1"',
            last_modified="Sat, 21 Nov 2026 10:00:00 GMT",
            headers={"Content-Type": "application/rss+xml"},
        ),
    )
    result = fetch(http_server.url("/f"))
    assert (result.status, result.body, result.etag) == (200, b"<rss/>", '"v1"')
    assert result.last_modified == "Sat, 21 Nov 2026 10:00:00 GMT"
    assert result.content_type == "application/rss+xml"
    user_agent = http_server.requests("/f")[0].headers["User-Agent"]
    assert user_agent.startswith("digest/") and "pypi.org" not in user_agent  # not the unrelated PyPI "digest"


def test_the_user_agent_names_the_deployment_reading(http_server: TestServer) -> None:
    """A feed's owner sees who reads: the deployment's public address (`[subscription] public_url`)."""
    http_server.route("/f", Response(b"<rss/>"))

    async def go() -> None:
        async with Fetcher(FAST, contact="https://digest.health.example") as fetcher:
            await fetcher.get(http_server.url("/f"))

    asyncio.run(go())
    user_agent = http_server.requests("/f")[0].headers["User-Agent"]
    assert user_agent == f"digest/{__version__} (weekly digest reader; +https://digest.health.example)"


def test_conditional_get_answers_not_modified(http_server: TestServer) -> None:
    http_server.route("/f", Response(b"<rss/>", etag='"v1"'))
    result = fetch(http_server.url("/f"), etag='"v1"')
    assert result.not_modified and result.body == b""
    assert http_server.requests("/f")[0].headers["If-None-Match"] == '"v1"'


def test_last_modified_is_sent_back(http_server: TestServer) -> None:
    stamp = "Sat, 21 Nov 2026 10:00:00 GMT"
    http_server.route("/f", Response(b"<rss/>", last_modified=stamp))
    assert fetch(http_server.url("/f"), last_modified=stamp).not_modified


def test_permanent_redirect_reports_new_url_and_temporary_does_not(http_server: TestServer) -> None:
    http_server.route("/old", Response(status=301, redirect_to="/new"))
    http_server.route("/tmp", Response(status=302, redirect_to="/new"))
    http_server.route("/new", Response(b"<rss/>"))
    assert fetch(http_server.url("/old")).moved_to == http_server.url("/new")
    assert fetch(http_server.url("/tmp")).moved_to is None


def test_redirect_loop_is_a_permanent_error(http_server: TestServer) -> None:
    http_server.route("/a", Response(status=302, redirect_to="/b"))
    http_server.route("/b", Response(status=302, redirect_to="/a"))
    with pytest.raises(PermanentFetchError, match="more than 5 redirects"):
        fetch(http_server.url("/a"))


@pytest.mark.parametrize(
    ("status", "kind", "text"),
    [
        (404, PermanentFetchError, "HTTP 404"),
        (410, PermanentFetchError, "gone"),
        (500, TransientFetchError, "HTTP 500"),
    ],
)
def test_error_statuses(http_server: TestServer, status: int, kind: type, text: str) -> None:
    http_server.route("/f", Response(b"no", status=status))
    with pytest.raises(kind, match=text) as info:
        fetch(http_server.url("/f"))
    assert info.value.status == status
    expected_tries = 3 if kind is TransientFetchError else 1
    assert http_server.hits("/f") == expected_tries


def test_transient_failure_is_retried_until_it_succeeds(http_server: TestServer) -> None:
    http_server.route("/f", Response(sequence=[Response(status=503), Response(status=500), Response(b"<rss/>")]))
    assert fetch(http_server.url("/f")).body == b"<rss/>"
    assert http_server.hits("/f") == 3


def test_retry_after_is_honoured(http_server: TestServer) -> None:
    http_server.route("/f", Response(sequence=[Response(status=429, retry_after="1"), Response(b"ok")]))
    started = time.monotonic()
    assert fetch(http_server.url("/f")).body == b"ok"
    assert time.monotonic() - started >= 0.9  # it waited as asked (a lower bound, not a timing target)


def test_long_retry_after_is_left_for_a_later_run(http_server: TestServer) -> None:
    http_server.route("/f", Response(status=429, retry_after="3600"))
    with pytest.raises(FetchError, match="retry after 3600 s") as info:
        fetch(http_server.url("/f"))
    assert info.value.retry_after == 3600
    assert not isinstance(info.value, TransientFetchError)
    assert http_server.hits("/f") == 1


def test_retry_after_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert parse_retry_after("Sat, 21 Nov 2026 10:01:00 GMT", now) == 60
    assert parse_retry_after("120") == 120
    assert parse_retry_after("soon") is None


def test_slow_server_times_out(http_server: TestServer) -> None:
    http_server.route("/slow", Response(b"late", delay=3))
    settings = CollectSettings(read_timeout=0.5, retries=0)
    with pytest.raises(TransientFetchError, match=r"timed out \(waiting for data\)"):
        fetch(http_server.url("/slow"), settings)


def test_total_timeout_bounds_a_trickling_body(http_server: TestServer) -> None:
    http_server.route("/slow", Response(b"late", delay=3))
    settings = CollectSettings(read_timeout=10, total_timeout=1, retries=0)
    with pytest.raises(TransientFetchError, match="timed out after 1 s in all"):
        fetch(http_server.url("/slow"), settings)


def test_endless_body_is_refused_at_the_cap(http_server: TestServer) -> None:
    http_server.route("/big", Response(stream_bytes=50_000_000))
    settings = CollectSettings(max_bytes=1_000_000, retries=0)
    with pytest.raises(PermanentFetchError, match=r"larger than 1\.0 MB"):
        fetch(http_server.url("/big"), settings)


def test_declared_oversize_is_refused_before_reading(http_server: TestServer) -> None:
    http_server.route("/big", Response(b"x" * 2000, content_length=5_000_000_000))
    settings = CollectSettings(max_bytes=1_000_000, retries=0)
    with pytest.raises(PermanentFetchError, match=r"5000\.0 MB is larger than 1\.0 MB"):
        fetch(http_server.url("/big"), settings)


def test_gzip_bomb_is_refused_without_inflating_it(http_server: TestServer) -> None:
    http_server.route("/bomb", Response(gzip_bomb=True))
    settings = CollectSettings(max_bytes=5_000_000, retries=0)
    tracemalloc.start()
    try:
        with pytest.raises(PermanentFetchError, match=r"larger than 5\.0 MB"):
            fetch(http_server.url("/bomb"), settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64_000_000  # far below the 1 GiB the body inflates to


def test_gzip_body_is_decoded(http_server: TestServer) -> None:
    import gzip

    http_server.route("/gz", Response(gzip.compress(b"<rss>hello</rss>"), headers={"Content-Encoding": "gzip"}))
    assert fetch(http_server.url("/gz")).body == b"<rss>hello</rss>"


def test_truncated_body_is_transient(http_server: TestServer) -> None:
    http_server.route("/cut", Response(b"<rss><channel>", content_length=10_000))
    with pytest.raises(TransientFetchError, match="connection failed"):
        fetch(http_server.url("/cut"), CollectSettings(retries=0))


def test_dead_server_is_transient() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientFetchError, match="connection failed") as caught:
        fetch(f"http://127.0.0.1:{port}/feed", CollectSettings(retries=0))
    assert "timed out" not in str(caught.value)  # httpx-aiohttp's own mapping calls a refused connection a timeout


@pytest.mark.parametrize("path", ["/not-http", "/garbage-status", "/huge-header"])
def test_malformed_answer_is_a_transient_one_line_failure(path: str) -> None:
    """What aiohttp refuses to read as HTTP (its transport leaves those errors unmapped) is a fetch error."""
    from hostile import HostileServer

    with HostileServer(drip=0.05) as server, pytest.raises(TransientFetchError) as caught:
        fetch(server.url(path), CollectSettings(retries=0))
    message = str(caught.value)
    assert message.startswith(f"{server.url(path)}: connection failed: malformed HTTP answer: ")
    assert "\n" not in message and len(message) < 300


def test_per_host_limit_caps_concurrent_requests(http_server: TestServer) -> None:
    import threading

    lock, in_flight, most = threading.Lock(), [0], [0]

    def slow(request: object) -> Response:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return Response(b"ok")

    http_server.route("/f", Response(callable=slow))
    settings = CollectSettings(per_host=2, concurrency=50)

    async def go() -> None:
        async with Fetcher(settings) as fetcher:
            await asyncio.gather(*(fetcher.get(http_server.url("/f")) for _ in range(6)))

    asyncio.run(go())
    assert http_server.hits("/f") == 6
    assert most[0] == 2

"""The test server itself: the collector tests rely on every behaviour checked here."""

from __future__ import annotations

import threading
import time
import zlib

import httpx
import pytest
from httpserver import GZIP_BOMB_SIZE, Recorded, Response, TestServer, gzip_bomb


def test_routes_by_path_and_logs_requests(http_server: TestServer) -> None:
    http_server.route(
        "/feed.xml",
        Response(b"<rss/>", headers={"Content-Type": "application/rss+xml"}),
    )

    answer = httpx.get(http_server.url("/feed.xml?utm_source=x&page=2"), headers={"X-Probe": "yes"})

    assert answer.status_code == 200
    assert answer.content == b"<rss/>"
    assert answer.headers["content-type"] == "application/rss+xml"
    (request,) = http_server.requests("/feed.xml")
    assert (request.method, request.path, request.query) == (
        "GET",
        "/feed.xml",
        "utm_source=x&page=2",
    )
    assert request.params == {"utm_source": "x", "page": "2"}
    assert request.headers["x-probe"] == request.headers["X-PROBE"] == "yes"
    assert http_server.hits("/feed.xml?utm_source=x&page=2") == 1
    assert http_server.hits("/feed.xml?page=3") == 0


def test_unknown_path_is_404(http_server: TestServer) -> None:
    assert httpx.get(http_server.url("/nowhere")).status_code == 404
    assert http_server.hits("/nowhere") == 1


def test_a_route_with_a_query_wins_over_the_bare_path(http_server: TestServer) -> None:
    http_server.route("/api", Response(b"any page"))
    http_server.route("/api?page=2", Response(b"page two"))

    assert httpx.get(http_server.url("/api?page=2")).content == b"page two"
    assert httpx.get(http_server.url("/api?page=3")).content == b"any page"
    assert httpx.get(http_server.url("/api")).content == b"any page"


def test_etag_answers_304_when_if_none_match_matches(http_server: TestServer) -> None:
    http_server.route("/feed", Response(b"body", etag='"v1"'))

    first = httpx.get(http_server.url("/feed"))
    again = httpx.get(http_server.url("/feed"), headers={"If-None-Match": first.headers["etag"]})
    weak = httpx.get(http_server.url("/feed"), headers={"If-None-Match": 'W/"v1"'})
    stale = httpx.get(http_server.url("/feed"), headers={"If-None-Match": '"v0"'})

    assert (first.status_code, first.headers["etag"], first.content) == (
        200,
        '"v1"',
        b"body",
    )
    assert (again.status_code, again.content) == (304, b"")
    assert weak.status_code == 304
    assert (stale.status_code, stale.content) == (200, b"body")


def test_last_modified_answers_304_when_if_modified_since_equals_it(
    http_server: TestServer,
) -> None:
    stamp = "Wed, 18 Nov 2026 09:30:00 GMT"
    http_server.route("/feed", Response(b"body", last_modified=stamp))

    first = httpx.get(http_server.url("/feed"))
    again = httpx.get(http_server.url("/feed"), headers={"If-Modified-Since": stamp})

    assert (first.status_code, first.headers["last-modified"]) == (200, stamp)
    assert (again.status_code, again.content) == (304, b"")


def test_sequence_answers_in_turn_and_repeats_the_last(http_server: TestServer) -> None:
    http_server.route(
        "/busy",
        Response(
            sequence=[
                Response(status=429, retry_after="2"),
                Response(status=500),
                Response(b"ok"),
            ]
        ),
    )

    answers = [httpx.get(http_server.url("/busy")) for _ in range(4)]

    assert [a.status_code for a in answers] == [429, 500, 200, 200]
    assert answers[0].headers["retry-after"] == "2"
    assert answers[3].content == b"ok"


def test_redirect_sends_location_and_is_followed(http_server: TestServer) -> None:
    http_server.route("/old", Response(status=301, redirect_to="/new"))
    http_server.route("/plain", Response(redirect_to=http_server.url("/new")))
    http_server.route("/new", Response(b"moved here"))

    answer = httpx.get(http_server.url("/old"), follow_redirects=True)
    unfollowed = httpx.get(http_server.url("/plain"))

    assert answer.content == b"moved here"
    assert [r.status_code for r in answer.history] == [301]
    assert (unfollowed.status_code, unfollowed.headers["location"]) == (
        302,
        http_server.url("/new"),
    )
    assert http_server.hits("/new") == 1


def test_content_length_larger_than_body_truncates(http_server: TestServer) -> None:
    http_server.route("/cut", Response(b"<rss><channel>", content_length=10_000))

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(http_server.url("/cut"))


def test_stream_bytes_sends_an_unannounced_body_in_chunks(
    http_server: TestServer,
) -> None:
    http_server.route("/big", Response(b"<rss>", stream_bytes=3 * 1024 * 1024))

    with httpx.stream("GET", http_server.url("/big")) as answer:
        assert "content-length" not in answer.headers
        assert answer.headers["transfer-encoding"] == "chunked"
        received = b"".join(answer.iter_bytes())

    assert received.startswith(b"<rss>xxx")
    assert len(received) == 5 + 3 * 1024 * 1024


def test_a_client_may_hang_up_on_an_endless_body(http_server: TestServer) -> None:
    http_server.route("/endless", Response(stream_bytes=1 << 40))

    with httpx.stream("GET", http_server.url("/endless")) as answer:
        for seen, _ in enumerate(answer.iter_raw()):
            if seen == 10:
                break

    http_server.route("/after", Response(b"still serving"))
    assert httpx.get(http_server.url("/after")).content == b"still serving"


def test_gzip_bomb_is_small_on_the_wire_and_huge_inflated(
    http_server: TestServer,
) -> None:
    http_server.route(
        "/bomb",
        Response(gzip_bomb=True, headers={"Content-Type": "application/rss+xml"}),
    )

    with httpx.stream("GET", http_server.url("/bomb")) as answer:
        assert answer.headers["content-encoding"] == "gzip"
        assert int(answer.headers["content-length"]) < 2 * 1024 * 1024
        first = next(answer.iter_bytes())

    assert first.strip(b"\0") == b""
    inflater = zlib.decompressobj(31)
    assert len(inflater.decompress(gzip_bomb(), 64 * 1024 * 1024)) == 64 * 1024 * 1024
    assert GZIP_BOMB_SIZE == 1 << 30


def test_gzip_bomb_is_a_valid_gzip_member() -> None:
    inflater = zlib.decompressobj(31)
    payload, inflated = gzip_bomb(), 0
    for start in range(0, len(payload), 1 << 16):
        inflated += len(inflater.decompress(payload[start : start + (1 << 16)]))
    assert (inflated, inflater.eof) == (GZIP_BOMB_SIZE, True)


def test_callable_answers_from_the_request(http_server: TestServer) -> None:
    def page(request: Recorded) -> Response:
        number = int(request.params.get("page", "1"))
        link = f'<{http_server.url("/items")}?page={number + 1}>; rel="next"'
        return Response(f"page {number}".encode(), headers={"Link": link} if number < 2 else {})

    http_server.route("/items", Response(callable=page))

    first = httpx.get(http_server.url("/items"))
    second = httpx.get(first.links["next"]["url"])

    assert (first.content, second.content) == (b"page 1", b"page 2")
    assert "link" not in second.headers


def test_callable_errors_answer_500_and_are_kept() -> None:
    def broken(request: Recorded) -> Response:
        raise ZeroDivisionError(request.path)

    with TestServer() as server:
        server.route("/boom", Response(callable=broken))
        answer = httpx.get(server.url("/boom"))

    assert answer.status_code == 500
    assert isinstance(server.errors[0], ZeroDivisionError)


def test_head_and_post(http_server: TestServer) -> None:
    http_server.route("/thing", Response(b"12345"))

    head = httpx.head(http_server.url("/thing"))
    post = httpx.post(http_server.url("/thing"), json={"identifier": "alice"})

    assert (head.status_code, head.headers["content-length"], head.content) == (
        200,
        "5",
        b"",
    )
    assert post.content == b"12345"
    assert [r.method for r in http_server.requests("/thing")] == ["HEAD", "POST"]
    assert http_server.requests("/thing")[1].body == b'{"identifier":"alice"}'


def test_delay_holds_the_answer(http_server: TestServer) -> None:
    http_server.route("/slow", Response(b"late", delay=0.3))

    with pytest.raises(httpx.ReadTimeout):
        httpx.get(http_server.url("/slow"), timeout=0.1)
    assert httpx.get(http_server.url("/slow"), timeout=2).content == b"late"


def test_close_is_prompt_with_slow_handlers_in_flight() -> None:
    server = TestServer()
    server.route("/slow", Response(b"never", delay=60))
    server.route("/endless", Response(stream_bytes=1 << 40))
    outcomes: list[object] = []

    def fetch(path: str) -> None:
        try:
            with httpx.stream("GET", server.url(path), timeout=30) as answer:
                for _ in answer.iter_raw():
                    pass
            outcomes.append(answer.status_code)
        except httpx.HTTPError as error:
            outcomes.append(error)

    clients = [threading.Thread(target=fetch, args=(path,)) for path in ("/slow", "/endless")]
    for client in clients:
        client.start()
    while server.hits("/slow") + server.hits("/endless") < 2:
        time.sleep(0.01)

    started = time.monotonic()
    server.close()
    for client in clients:
        client.join(timeout=5)

    assert time.monotonic() - started < 2
    assert len(outcomes) == 2 and all(isinstance(o, httpx.HTTPError) for o in outcomes)
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url("/slow"))

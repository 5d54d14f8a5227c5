"""`digest collect` end to end against a real HTTP server on 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

import gc
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import NOW, run_cli, settings_from
from httpserver import Response, TestServer

from digest.collect import collect
from digest.errors import StoreError
from digest.store import SQLStore, Store

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"


def serve_feed(server: TestServer, path: str, name: str, **kwargs: object) -> str:
    server.route(path, Response((FEEDS / name).read_bytes(), headers={"Content-Type": "application/rss+xml"}, **kwargs))
    return server.url(path)


def feeds_config(*urls: str) -> str:
    return "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in urls)


def run(tmp_path: Path, body: str, now=NOW):
    settings = settings_from(tmp_path, body)
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=now)
        return report, store.source_states(), store.count_posts()


def test_every_format_is_collected_and_recollecting_stores_nothing_new(tmp_path: Path, http_server: TestServer) -> None:
    names = [
        "rss091.xml",
        "rss092.xml",
        "rss10.rdf",
        "rss20.xml",
        "atom03.xml",
        "atom10.xml",
        "jsonfeed10.json",
        "jsonfeed11.json",
        "latin1.xml",
    ]
    urls = [serve_feed(http_server, f"/{n}", n) for n in names]
    report, states, count = run(tmp_path, feeds_config(*urls))
    assert report.count("ok") == len(names) and report.count("failed") == 0
    assert count == report.new_posts == 26
    again, _, count_again = run(tmp_path, feeds_config(*urls))
    assert again.new_posts == 0 and count_again == 26
    assert all(s.status == "ok" and s.failures == 0 and s.last_success == NOW for s in states.values())


def test_etag_makes_the_second_run_a_cheap_not_modified(tmp_path: Path, http_server: TestServer) -> None:
    url = serve_feed(http_server, "/f", "rss20.xml", etag='"abc"', last_modified="Fri, 20 Nov 2026 14:30:00 GMT")
    run(tmp_path, feeds_config(url))
    report, states, _ = run(tmp_path, feeds_config(url))
    assert report.count("not_modified") == 1 and report.new_posts == 0
    request = http_server.requests("/f")[-1]
    assert request.headers["If-None-Match"] == '"abc"'
    assert request.headers["If-Modified-Since"] == "Fri, 20 Nov 2026 14:30:00 GMT"
    state = states[f"feed:{url}"]
    assert state.etag == '"abc"' and state.status == "not_modified"


def test_a_body_read_last_time_is_not_parsed_again_when_the_server_ignores_conditional_requests(
    tmp_path: Path, http_server: TestServer
) -> None:
    url = serve_feed(http_server, "/f", "rss20.xml")  # no ETag, no Last-Modified: every answer is a full 200
    first, states, count = run(tmp_path, feeds_config(url))
    assert first.count("ok") == 1 and count > 0 and states[f"feed:{url}"].body_hash
    again, states, _ = run(tmp_path, feeds_config(url))
    assert again.count("not_modified") == 1 and again.new_posts == 0  # the same bytes: not read again
    assert len(http_server.requests("/f")) == 2 and states[f"feed:{url}"].status == "not_modified"
    serve_feed(http_server, "/f", "atom10.xml")  # the feed changed: read again, its posts stored
    changed, states, count_after = run(tmp_path, feeds_config(url))
    assert changed.count("ok") == 1 and changed.new_posts > 0 and count_after == count + changed.new_posts


def test_one_broken_source_never_stops_the_rest(tmp_path: Path, http_server: TestServer) -> None:
    good = serve_feed(http_server, "/good", "rss20.xml")
    http_server.route("/missing", Response(b"nope", status=404))
    http_server.route(
        "/html", Response((FEEDS / "not_a_feed.html").read_bytes(), headers={"Content-Type": "text/html"})
    )
    http_server.route("/broken", Response((FEEDS / "malformed.xml").read_bytes()))
    http_server.route("/bomb", Response(gzip_bomb=True))
    bad = [http_server.url(p) for p in ("/missing", "/html", "/broken", "/bomb")]
    report, states, count = run(tmp_path, feeds_config(good, *bad))
    assert report.count("ok") == 1 and report.count("failed") == 4 and count == 4
    errors = {e["source"]: e["error"] for e in report.as_dict()["errors"]}
    assert "HTTP 404" in errors[f"feed:{bad[0]}"]
    assert "got a web page" in errors[f"feed:{bad[1]}"]
    assert "not a feed" in errors[f"feed:{bad[2]}"]
    assert "larger than" in errors[f"feed:{bad[3]}"]
    for url in bad:
        state = states[f"feed:{url}"]
        assert state.failures == 1 and state.status == "failed"
        assert state.last_error.startswith(url) and "\n" not in state.last_error


def test_failing_source_rests_after_threshold_and_is_retried_later(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route("/down", Response(status=500))
    body = feeds_config(http_server.url("/down"))
    collect_section = "[collect]\nretries = 0\nfailure_threshold = 2\nretry_window_hours = 6\n"
    settings = settings_from(tmp_path, body, collect=collect_section)
    with Store.open(settings.database_url) as store:
        for hour in range(2):
            collect(settings, store, now=NOW + timedelta(hours=hour))
        state = store.source_states()[f"feed:{http_server.url('/down')}"]
        assert state.failures == 2 and state.next_attempt == NOW + timedelta(hours=1 + 6)
        resting = collect(settings, store, now=NOW + timedelta(hours=3))
        assert resting.count("skipped") == 1 and "resting until" in resting.results[0].error
        assert http_server.hits("/down") == 2
        http_server.route("/down", Response((FEEDS / "rss20.xml").read_bytes()))
        back = collect(settings, store, now=NOW + timedelta(hours=8))
        assert back.count("ok") == 1
        assert store.source_states()[f"feed:{http_server.url('/down')}"].failures == 0


def test_gone_feed_is_marked_dead_and_skipped(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route("/gone", Response(status=410))
    body = feeds_config(http_server.url("/gone"))
    _, states, _ = run(tmp_path, body)
    assert states[f"feed:{http_server.url('/gone')}"].status == "dead"
    again, _, _ = run(tmp_path, body, now=NOW + timedelta(days=1))
    assert again.count("skipped") == 1 and "gone since" in again.results[0].error
    assert http_server.hits("/gone") == 1


def test_permanent_redirect_updates_the_url(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route("/old", Response(status=301, redirect_to="/new"))
    serve_feed(http_server, "/new", "rss20.xml")
    body = feeds_config(http_server.url("/old"))
    report, states, _ = run(tmp_path, body)
    assert states[f"feed:{http_server.url('/old')}"].url == http_server.url("/new")
    assert "moved permanently" in report.as_dict()["notes"][0]["note"]
    run(tmp_path, body)
    assert http_server.hits("/old") == 1 and http_server.hits("/new") == 2


def test_long_retry_after_rests_the_source_until_then(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route("/busy", Response(status=503, retry_after="7200"))
    body = feeds_config(http_server.url("/busy"))
    _, states, _ = run(tmp_path, body)
    assert states[f"feed:{http_server.url('/busy')}"].next_attempt == NOW + timedelta(hours=2)
    report, _, _ = run(tmp_path, body, now=NOW + timedelta(hours=1))
    assert report.count("skipped") == 1 and http_server.hits("/busy") == 1


def test_gap_is_recorded_when_a_feed_moved_past_what_was_stored(tmp_path: Path, http_server: TestServer) -> None:
    old = b"""<rss version="2.0"><channel><title>t</title>
      <item><guid>https://g.example/1</guid><title>one</title><pubDate>Mon, 16 Nov 2026 10:00:00 GMT</pubDate></item>
    </channel></rss>"""
    new = b"""<rss version="2.0"><channel><title>t</title>
      <item><guid>https://g.example/3</guid><title>three</title><pubDate>Fri, 20 Nov 2026 10:00:00 GMT</pubDate></item>
      <item><guid>https://g.example/2</guid><title>two</title><pubDate>Thu, 19 Nov 2026 10:00:00 GMT</pubDate></item>
    </channel></rss>"""
    http_server.route("/f", Response(sequence=[Response(old), Response(new)]))
    body = feeds_config(http_server.url("/f"))
    run(tmp_path, body)
    report, states, _ = run(tmp_path, body)
    assert states[f"feed:{http_server.url('/f')}"].gap_possible
    assert "gap possible" in report.as_dict()["notes"][0]["note"]


def test_same_link_through_two_feeds_is_recognised(tmp_path: Path, http_server: TestServer) -> None:
    a = b"""<rss version="2.0"><channel><title>a</title><item><guid>https://a.example/1</guid><title>x</title>
      <description>&lt;a href="https://news.example/story?utm_source=a&amp;id=7"&gt;story&lt;/a&gt;</description></item></channel></rss>"""
    b = b"""<rss version="2.0"><channel><title>b</title><item><guid>https://b.example/1</guid><title>y</title>
      <description>&lt;a href="https://NEWS.example/story?id=7&amp;fbclid=zz#top"&gt;same story&lt;/a&gt;</description></item></channel></rss>"""
    http_server.route("/a", Response(a))
    http_server.route("/b", Response(b))
    settings = settings_from(tmp_path, feeds_config(http_server.url("/a"), http_server.url("/b")))
    with Store.open(settings.database_url) as store:
        collect(settings, store, now=NOW)
        assert len(store.posts_linking("https://news.example/story?id=7")) == 2


def test_cli_json_summary_and_exit_codes(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    good = serve_feed(http_server, "/good", "rss20.xml")
    http_server.route("/bad", Response(status=404))
    path = tmp_path / "feeds.toml"
    path.write_text(feeds_config(good, http_server.url("/bad")), encoding="utf-8")
    assert run_cli("--config", str(path), "collect", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("sources", "ok", "not_modified", "failed", "new_posts")} == {
        "sources": 2,
        "ok": 1,
        "not_modified": 0,
        "failed": 1,
        "new_posts": 4,
    }
    assert summary["errors"] == [
        {"source": f"feed:{http_server.url('/bad')}", "error": f"{http_server.url('/bad')}: HTTP 404 Not Found"}
    ]
    # Fetched again at once (by default a source fetched moments ago is left alone, as held elsewhere).
    path.write_text("[collect]\nrefetch_after = 0\n\n" + feeds_config(http_server.url("/bad")), encoding="utf-8")
    assert run_cli("--config", str(path), "collect", "--quiet") == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_cli_table_summary(tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]) -> None:
    good = serve_feed(http_server, "/good", "rss20.xml")
    path = tmp_path / "feeds.toml"
    path.write_text(feeds_config(good), encoding="utf-8")
    assert run_cli("--config", str(path), "collect") == 0
    out = capsys.readouterr().out
    assert "feed" in out and "4 new posts from 1 source." in out


def test_a_store_that_fails_stops_the_run_with_one_error(
    tmp_path: Path, http_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(SQLStore):
        def add_many(self, batches: object, *, owner: str = "") -> list[int]:
            raise StoreError("the disk is full")

    urls = [serve_feed(http_server, f"/f{i}", "rss20.xml") for i in range(6)]
    settings = settings_from(tmp_path, feeds_config(*urls))
    with Store.open(settings.database_url) as store, pytest.raises(StoreError, match="the disk is full"):
        collect(settings, BrokenStore(store.engine))
    gc.collect()  # a task whose exception nobody retrieved says so when it is collected
    assert not [r for r in caplog.records if r.name == "asyncio"], [r.getMessage() for r in caplog.records]


def test_each_claim_reads_a_window_of_the_sources_left_not_all_of_them(tmp_path: Path, http_server: TestServer) -> None:
    """A run claims CLAIM_BATCH sources at a time; each claim reads at most CLAIM_WINDOW batches of the
    sources left (reading every one left each time made 1,000 feeds cost 40 reads of up to 1,000 rows),
    and every source is still collected once."""
    from digest.collect import CLAIM_BATCH, CLAIM_WINDOW

    asked: list[int] = []

    class CountingStore(SQLStore):
        def claim_sources(self, wanted: Any, *args: Any, **kwargs: Any) -> Any:
            asked.append(len(wanted))
            return super().claim_sources(wanted, *args, **kwargs)

    count = CLAIM_BATCH * CLAIM_WINDOW + 40
    http_server.route("/f", Response(b"<rss version='2.0'><channel><title>t</title></channel></rss>"))
    urls = [http_server.url(f"/f?n={i}") for i in range(count)]
    settings = settings_from(tmp_path, feeds_config(*urls))
    with Store.open(settings.database_url) as store:
        report = collect(settings, CountingStore(store.engine), now=NOW)
    assert report.count("ok") == count and len(http_server.requests("/f")) == count
    assert max(asked) <= CLAIM_BATCH * CLAIM_WINDOW < count


def test_a_gone_feed_is_advised_away_once(tmp_path: Path, http_server: TestServer) -> None:
    """The advice to remove a gone feed rides on the error (``advice``), not in the stored reason, so
    neither the failure nor the later skip says it twice (the skip used to repeat it)."""
    http_server.route("/gone", Response(status=410))
    body = feeds_config(http_server.url("/gone"))
    first, states, _ = run(tmp_path, body)
    state = states[f"feed:{http_server.url('/gone')}"]
    assert state.last_error == f"{http_server.url('/gone')}: HTTP 410 Gone: the feed is gone"
    assert first.results[0].error == f"{state.last_error}; remove it from feeds.toml"
    again, _, _ = run(tmp_path, body, now=NOW + timedelta(days=1))
    assert again.results[0].error.count("remove it from feeds.toml") == 1

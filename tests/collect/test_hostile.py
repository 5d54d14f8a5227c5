"""Hostile feed servers cannot hold a run: a request's retries share one time budget, a run has a
deadline, and every hostile source is named among the errors while every good feed is stored.

The servers are real sockets on 127.0.0.1 (tests/hostile.py drips bytes, never answers, streams
without end, loops redirects, sends a megabyte of headers ...). Timeouts are small via the config,
so the tests take seconds; they assert outcomes (which sources failed, and why; what was stored;
how many tries a server saw), never how long anything took.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import NOW, run_cli, settings_from
from hostile import BEHAVIOURS, HOSTILE, READABLE, SLOW, HostileServer, corpus_sources, good_feed
from httpserver import Response, TestServer

from digest.collect import collect
from digest.store import Store

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "feeds"
REAL = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md") if CORPUS.is_dir() else []
GOOD_FEEDS = 120


@pytest.fixture
def hostile() -> HostileServer:
    with HostileServer(drip=0.05) as server:
        yield server


def fast(total: float, run: float = 120, retries: int = 2) -> str:
    return (
        f"[collect]\nconnect_timeout = 1\nread_timeout = 0.5\ntotal_timeout = {total}\nretries = {retries}\n"
        f"max_retry_after = 1\nrun_timeout = {run}\nmax_bytes = 1000000\n"
    )


def test_retries_share_one_budget(tmp_path: Path, hostile: HostileServer, http_server: TestServer) -> None:
    """A slowloris feed drips within every read timeout; its first try spends the request's whole
    budget, so it is not tried again (each try used to get the full total_timeout)."""
    http_server.route(
        "/flaky.xml",
        Response(
            sequence=[Response(status=503), Response(good_feed(1), headers={"Content-Type": "application/rss+xml"})]
        ),
    )
    body = f'[[sources]]\nfeed = "{hostile.url("/slowloris-body")}"\n[[sources]]\nfeed = "{http_server.url("/flaky.xml")}"\n'
    settings = settings_from(tmp_path, body, collect=fast(total=1, retries=3))
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
    results = {r.key.split(":", 1)[1]: r for r in report.results}
    slow = results[hostile.url("/slowloris-body")]
    assert slow.status == "failed"
    assert "timed out after 1 s in all (total_timeout, 1 try)" in slow.error, slow.error
    assert results[http_server.url("/flaky.xml")].status == "ok"  # a quick retry still fits its budget
    assert http_server.hits("/flaky.xml") == 2


def test_run_deadline_marks_unfinished_sources_timed_out(
    tmp_path: Path, hostile: HostileServer, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """At [collect] run_timeout every source still in flight is recorded as timed out with a
    one-line reason; finished sources keep their posts and the run reports as usual."""
    for n in range(5):
        http_server.route(f"/good/{n}.xml", Response(good_feed(n), headers={"Content-Type": "application/rss+xml"}))
    slow = [hostile.url(p) for p in SLOW]
    good = [http_server.url(f"/good/{n}.xml") for n in range(5)]
    body = "".join(f'[[sources]]\nfeed = "{url}"\n' for url in slow + good)
    settings = settings_from(tmp_path, body, collect=fast(total=600, run=1.5))
    assert run_cli("--config", str(settings.path), "collect", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    errors = {e["source"].removeprefix("feed:"): e["error"] for e in summary["errors"]}
    assert sorted(errors) == sorted(slow)
    for url, error in errors.items():
        assert error == f"{url}: timed out: not finished by the run's deadline (1.5 s, [collect] run_timeout)"
    assert summary["ok"] == 5 and summary["new_posts"] == 10
    with Store.open(settings.database_url) as store:
        assert len(store.posts()) == 10
        states = store.source_states()
    assert all(states[f"feed:{url}"].status == "failed" and states[f"feed:{url}"].failures == 1 for url in slow)


@pytest.mark.skipif(not REAL, reason=f"shared feed corpus not found at {CORPUS}: the corpus runs without it")
def test_hostile_corpus_with_real_feeds(tmp_path: Path, hostile: HostileServer, http_server: TestServer) -> None:
    _hostile_corpus(tmp_path, hostile, http_server, REAL)


def test_hostile_corpus(tmp_path: Path, hostile: HostileServer, http_server: TestServer) -> None:
    _hostile_corpus(tmp_path, hostile, http_server, [])


def _hostile_corpus(tmp_path: Path, hostile: HostileServer, http_server: TestServer, real: list[Path]) -> None:
    """Every hostile source is named among the errors with a one-line reason, every good feed's
    posts are stored, and the real documents are read (web pages among them fail clearly)."""
    body = corpus_sources(hostile, http_server, GOOD_FEEDS, real)
    settings = settings_from(tmp_path, body, collect=fast(total=1.5))
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        posts = store.posts()
    stored = {p.source for p in posts}
    results = {r.key.removeprefix("feed:"): r for r in report.results}
    assert len(results) == len(BEHAVIOURS) + GOOD_FEEDS + len(real)
    for path in HOSTILE:
        result = results[hostile.url(path)]
        assert result.status == "failed", f"{path}: {result.status}"
        assert result.error.startswith(hostile.url("")) and "\n" not in result.error, result.error
        assert "internal error" not in result.error, result.error
    for path in SLOW:
        assert "timed out" in results[hostile.url(path)].error
    for path in READABLE:
        assert results[hostile.url(path)].status == "ok"
        read = [p for p in posts if p.source == f"feed:{hostile.url(path)}"]
        assert read and not any("root:" in p.title + p.text for p in read)  # the external entity was never read
    for n in range(GOOD_FEEDS):
        url = http_server.url(f"/good/{n}.xml")
        assert results[url].status == "ok" and results[url].fetched == 2, results[url]
        assert f"feed:{url}" in stored
    for i, path in enumerate(real):
        result = results[http_server.url(f"/real/{i}/{path.name}")]
        expected = "failed" if path.suffix == ".html" else "ok"
        assert result.status == expected, f"{path.name}: {result.error}"
    assert report.as_dict()["failed"] == len(HOSTILE) + sum(1 for p in real if p.suffix == ".html")

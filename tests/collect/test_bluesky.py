"""Bluesky: an author feed from the public AppView (cursor paging, facets, embeds, opt-outs) and
hashtag search with a login, served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from helpers import NOW, TEST_COLLECT, settings_from
from httpserver import Recorded, Response, TestServer

from digest.collect import collect
from digest.collect.bluesky import richtext_html
from digest.config import Settings
from digest.store import Store

FIX = Path(__file__).parents[1] / "fixtures" / "bluesky"
MAYA = "maya.healthdata.test"
CURSOR = "2026-11-18T16:12:09.777Z"


def answer(name: str) -> Response:
    return Response((FIX / f"{name}.json").read_bytes(), headers={"Content-Type": "application/json"})


def serve_author_feed(server: TestServer) -> None:
    def feed(request: Recorded) -> Response:
        if request.params.get("actor") == "quinn.privatepractice.test":
            return answer("optout_author_feed")
        return answer("author_feed_page2" if request.params.get("cursor") == CURSOR else "author_feed_page1")

    server.route("/appview/xrpc/app.bsky.feed.getAuthorFeed", Response(callable=feed))


def configure(tmp_path: Path, server: TestServer, sources: str, extra: str = "") -> Settings:
    section = TEST_COLLECT + f'bluesky_appview = "{server.url("/appview")}"\n'
    return settings_from(tmp_path, extra + sources, collect=section)


def test_author_feed_is_paged_and_every_field_filled(tmp_path: Path, http_server: TestServer) -> None:
    serve_author_feed(http_server)
    settings = configure(tmp_path, http_server, f'[[sources]]\nbluesky = "{MAYA}"\n')
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        assert report.count("ok") == 1, report.as_dict()
        posts = {p.url.rsplit("/", 1)[1]: p for p in store.posts()}
    assert len(posts) == 8
    assert [r.params.get("cursor") for r in http_server.requests()] == [None, CURSOR]
    answer_post = posts["3n2r3d6z2cscg"]
    assert answer_post.author.handle == MAYA and answer_post.author.url == f"https://bsky.app/profile/{MAYA}"
    assert answer_post.uri.startswith("at://") and answer_post.engagement.likes is not None
    repost = posts["3n2r2qodsmkic"]
    assert repost.is_boost and repost.boosted_by == MAYA and repost.author.handle == "theo.telehealth.test"
    facets = posts["3n2nrqsz7fkiz"]
    assert any(link.startswith("https://hl7.example/fhir/r6-ballot") and "utm_" not in link for link in facets.links)
    assert ">hl7.example/fhir/r6-ballot</a>" in facets.html
    assert facets.mentions == ("did:plc:wczmthxq2qnjnmc2fbntfuci",)
    assert posts["3n2lx4ymsvct7"].is_reply
    images = posts["3n2lftuwtfki3"].media
    assert len(images) == 2 and images[0].alt and images[1].alt == ""
    assert posts["3n2ilytomc2nz"].is_quote
    german = posts["3n2c6xewhb2jo"]
    assert german.language == "de" and len(german.tags) == 2


def test_second_run_stops_at_what_is_stored(tmp_path: Path, http_server: TestServer) -> None:
    serve_author_feed(http_server)
    settings = configure(tmp_path, http_server, f'[[sources]]\nbluesky = "{MAYA}"\n')
    with Store.open(settings.database_url) as store:
        collect(settings, store, now=NOW)
        again = collect(settings, store, now=NOW + timedelta(hours=1))
        cursor = json.loads(store.source_states()[f"bluesky:{MAYA}"].cursor)
    assert again.new_posts == 0 and again.count("ok") == 1
    assert len(http_server.requests()) == 3  # two pages, then one page that reaches known posts
    assert cursor["indexed_at"].startswith("2026-11-20")


def test_opted_out_author_is_not_collected(tmp_path: Path, http_server: TestServer) -> None:
    serve_author_feed(http_server)
    settings = configure(tmp_path, http_server, '[[sources]]\nbluesky = "quinn.privatepractice.test"\n')
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        assert store.count_posts() == 0
    assert "!no-unauthenticated" in report.results[0].error


def test_hashtag_search_logs_in_and_dedupes_with_the_author_feed(
    tmp_path: Path, http_server: TestServer, monkeypatch
) -> None:
    serve_author_feed(http_server)
    http_server.route("/pds/xrpc/com.atproto.server.createSession", answer("create_session"))
    http_server.route(
        "/pds/xrpc/app.bsky.feed.searchPosts",
        Response(
            callable=lambda r: answer("search_posts") if not r.params.get("cursor") else Response(b'{"posts": []}')
        ),
    )
    monkeypatch.setenv("BSKY_APP_PASSWORD", "app-pass-1234")
    login = f'[bluesky]\nhandle = "hit-digest.test"\napp_password = "${{BSKY_APP_PASSWORD}}"\nservice = "{http_server.url("/pds")}"\n\n'
    sources = f'[[sources]]\nbluesky = "{MAYA}"\n\n[[sources]]\nhashtag = "HITsm"\nnetworks = ["bluesky"]\n'
    settings = configure(tmp_path, http_server, sources, extra=login)
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        assert report.count("ok") == 2, report.as_dict()
        posts = {p.url.rsplit("/", 1)[1]: p for p in store.posts()}
        assert store.sources_of(posts["3n2r3d6z2cscg"].id) == ["bluesky:maya.healthdata.test", "hashtag:#HITsm@bluesky"]
    session = http_server.requests("/pds/xrpc/com.atproto.server.createSession")[0]
    assert json.loads(session.body) == {"identifier": "hit-digest.test", "password": "app-pass-1234"}
    search = http_server.requests("/pds/xrpc/app.bsky.feed.searchPosts")[0]
    assert search.headers["Authorization"].startswith("Bearer ey") and search.params["q"] == "#HITsm"
    assert "3n2nziz7g22ag" not in posts  # quinn opted out
    assert "3n2gp4yeavkce" in posts  # jon's post, only quoted in the author feed
    assert len(posts) == 9


def test_richtext_uses_utf8_byte_offsets() -> None:
    text = "🩺 see hl7.example — ok"
    start = len("🩺 see ".encode())
    end = start + len(b"hl7.example")
    facets = [
        {
            "index": {"byteStart": start, "byteEnd": end},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://hl7.example/"}],
        }
    ]
    assert richtext_html(text, facets) == '<p>🩺 see <a href="https://hl7.example/">hl7.example</a> — ok</p>'
    broken = [{"index": {"byteStart": 500, "byteEnd": 900}, "features": facets[0]["features"]}]
    assert richtext_html("<b>x</b>", broken) == "<p>&lt;b&gt;x&lt;/b&gt;</p>"

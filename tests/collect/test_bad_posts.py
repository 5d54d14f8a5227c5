"""A bad post is one bad post: every parser (RSS, Atom, JSON Feed, Mastodon API, Bluesky) is served
a batch of good posts with one poisoned post per known failure shape, over real HTTP on 127.0.0.1,
into a real store (SQLite and PostgreSQL). The good posts, and the poisoned ones a parser can still
read, are stored; the rest are skipped and counted in the source's note; the source never fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from helpers import NOW, TEST_COLLECT, run_cli, settings_from
from httpserver import Response, TestServer

from digest.collect import collect
from digest.store import Store

WHEN = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
EMPTY_HASHTAG = '<p>Read <a class="hashtag" href="https://social.example/tags/">#</a> now</p>'
LONG_URL = "https://example.org/" + "a" * 5000


@dataclass(frozen=True)
class Case:
    """One poisoned post: its shape, and whether the parser should still read it (else it is skipped)."""

    shape: str
    post: Any
    stored: bool


# -- RSS 2.0 ------------------------------------------------------------------------------------


def rss_item(
    n: int, *, title: str = "", link: str = "", date: str = "Fri, 20 Nov 2026 10:00:00 GMT", body: str = ""
) -> str:
    title = title or f"Good post {n}"
    link = link or f"https://blog.example/p/{n}"
    body = body or f"<p>FHIR news number {n}</p>"
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link><guid>{escape(link)}</guid>"
        f"<pubDate>{date}</pubDate><description>{escape(body)}</description></item>"
    )


RSS_CASES = [
    Case("empty hashtag", rss_item(101, body=EMPTY_HASHTAG), stored=True),
    Case("invalid date", rss_item(102, date="the day after tomorrow"), stored=True),
    Case("missing date", rss_item(103, date=""), stored=True),
    Case("link with a port out of range", rss_item(104, link="https://blog.example:99999/p"), stored=True),
    Case("link to an unclosed IPv6 host", rss_item(108, link="http://[::1/p"), stored=True),
    Case("absurdly long link", rss_item(105, link=LONG_URL), stored=False),
    Case("absurdly long title", rss_item(106, title="T" * 20_000), stored=False),
    Case("link in the body with a bad port", rss_item(107, body='<a href="http://x.example:0x50/">x</a>'), stored=True),
    Case("NUL character in the text", rss_item(109, body="a&#0;b"), stored=True),
]


def rss(items: list[str]) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title><link>https://blog.example/</link>'
        + "".join(items)
        + "</channel></rss>"
    ).encode()


# -- Atom 1.0 -----------------------------------------------------------------------------------


def atom_entry(n: int, *, link: str = "", updated: str = WHEN, content: str = "", title: str = "") -> str:
    link = link or f"https://atom.example/e/{n}"
    content = content or f"<p>Interoperability entry {n}</p>"
    return (
        f'<entry><title>{escape(title or f"Entry {n}")}</title><link href="{escape(link)}"/>'
        f"<id>tag:atom.example,2026:{n}</id><updated>{updated}</updated>"
        f'<content type="html">{escape(content)}</content></entry>'
    )


ATOM_CASES = [
    Case("empty hashtag", atom_entry(201, content=EMPTY_HASHTAG), stored=True),
    Case("invalid date", atom_entry(202, updated="yesterday-ish"), stored=True),
    Case(
        "link with a port out of range",
        atom_entry(203, content='<a href="https://a.example:70000/">a</a>'),
        stored=True,
    ),
    Case("absurdly long title", atom_entry(204, title="T" * 20_000), stored=False),
]


def atom(entries: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Atom</title>'
        "<id>tag:atom.example,2026:feed</id><updated>2026-11-20T00:00:00Z</updated>" + "".join(entries) + "</feed>"
    ).encode()


# -- JSON Feed 1.1 ------------------------------------------------------------------------------


def json_item(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"https://json.example/i/{n}",
        "url": f"https://json.example/i/{n}",
        "title": f"Item {n}",
        "content_html": f"<p>Privacy item {n}</p>",
        "date_published": WHEN,
        **fields,
    }


JSON_CASES = [
    Case("an item that is a number", 5, stored=False),
    Case("an item that is a list", ["a"], stored=False),
    Case("empty hashtag", json_item(301, content_html=EMPTY_HASHTAG), stored=True),
    Case("date of the wrong type", json_item(302, date_published=1234567), stored=True),
    Case("invalid date", json_item(303, date_published="31/31/2026"), stored=True),
    Case("tags that are a number", json_item(304, tags=5), stored=False),
    Case("language that is a number", json_item(305, language=5), stored=True),
    Case("title that is an object", json_item(306, title={"a": 1}), stored=True),
    Case("external URL with a bad port", json_item(307, external_url="https://x.example:123456/"), stored=True),
    Case("absurdly long id", json_item(308, id="x" * 5000, url=""), stored=False),
    Case("NUL character in the text", json_item(309, content_html="<p>a\u0000b</p>"), stored=True),
    Case("attachments that are text", json_item(310, attachments="none"), stored=True),
]


def json_feed(items: list[Any]) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "JSON", "items": items}).encode()


# -- Mastodon API -------------------------------------------------------------------------------


def status(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(1000 - n),
        "uri": f"https://social.example/users/ana/statuses/{1000 - n}",
        "url": f"https://social.example/@ana/{1000 - n}",
        "created_at": WHEN,
        "content": f"<p>#HITsm status {n}</p>",
        "account": {"username": "ana", "acct": "ana", "display_name": "Ana", "url": "https://social.example/@ana"},
        "tags": [{"name": "HITsm"}],
        "mentions": [],
        "media_attachments": [],
        "replies_count": 1,
        **fields,
    }


MASTODON_CASES = [
    Case("a status that is text", "nonsense", stored=False),
    Case("empty hashtag", status(401, content=EMPTY_HASHTAG), stored=True),
    Case("account that is text", status(402, account="ana"), stored=False),
    Case("mentions that are numbers", status(403, mentions=[5]), stored=False),
    Case("tags that are text", status(404, tags="HITsm"), stored=False),
    Case(
        "media description that is a number",
        status(405, media_attachments=[{"url": "https://m/1", "description": 5}]),
        stored=False,
    ),
    Case("count that is text", status(406, replies_count="many"), stored=False),
    Case("invalid date", status(407, created_at="soon"), stored=True),
    Case("URL with a bad port", status(408, url="https://social.example:99999/@ana/1", uri=""), stored=True),
    Case("absurdly long URL", status(409, url=LONG_URL, uri=LONG_URL), stored=False),
    Case("NUL character in the content", status(410, content="<p>a\u0000b</p>"), stored=True),
]


# -- Bluesky AppView ----------------------------------------------------------------------------


def view(n: int, record: Any = None, **fields: Any) -> dict[str, Any]:
    return {
        "post": {
            "uri": f"at://did:plc:maya/app.bsky.feed.post/p{n}",
            "author": {"did": "did:plc:maya", "handle": "maya.test", "displayName": "Maya"},
            "record": record if record is not None else {"text": f"FHIR skeet {n}", "createdAt": WHEN},
            "indexedAt": WHEN,
            "likeCount": 2,
            **fields,
        }
    }


BLUESKY_CASES = [
    Case("an item that is a number", 7, stored=False),
    Case("record that is text", view(501, record="text"), stored=False),
    Case("no date at all", view(502, record={"text": "undated"}, indexedAt=""), stored=False),
    Case("count that is text", view(503, likeCount="lots"), stored=False),
    Case("facets that are numbers", view(504, record={"text": "x", "createdAt": WHEN, "facets": [1]}), stored=False),
    Case("languages that are a number", view(505, record={"text": "x", "createdAt": WHEN, "langs": 5}), stored=False),
    Case(
        "images that are text", view(506, embed={"$type": "app.bsky.embed.images#view", "images": ["a"]}), stored=False
    ),
    Case("invalid creation date", view(507, record={"text": "when?", "createdAt": "later"}), stored=True),
]


@dataclass(frozen=True)
class Parser:
    name: str
    cases: list[Case]
    good: Callable[[int], Any]
    serve: Callable[[TestServer, list[Any]], str]  # registers the route, returns the feeds.toml sources


def _serve_feed(
    path: str, build: Callable[[list[Any]], bytes], content_type: str
) -> Callable[[TestServer, list[Any]], str]:
    def serve(server: TestServer, posts: list[Any]) -> str:
        server.route(path, Response(build(posts), headers={"Content-Type": content_type}))
        return f'[[sources]]\nfeed = "{server.url(path)}"\n'

    return serve


def _serve_mastodon(server: TestServer, statuses: list[Any]) -> str:
    server.route(
        "/s1/api/v1/timelines/tag/Poison",
        Response(json.dumps(statuses).encode(), headers={"Content-Type": "application/json"}),
    )
    return '[[sources]]\nhashtag = "Poison"\nservers = ["social.example"]\n'


def _serve_bluesky(server: TestServer, items: list[Any]) -> str:
    server.route(
        "/appview/xrpc/app.bsky.feed.getAuthorFeed",
        Response(json.dumps({"feed": items}).encode(), headers={"Content-Type": "application/json"}),
    )
    return '[[sources]]\nbluesky = "maya.test"\n'


PARSERS = [
    Parser("rss", RSS_CASES, rss_item, _serve_feed("/rss.xml", rss, "application/rss+xml")),
    Parser("atom", ATOM_CASES, atom_entry, _serve_feed("/atom.xml", atom, "application/atom+xml")),
    Parser("jsonfeed", JSON_CASES, json_item, _serve_feed("/feed.json", json_feed, "application/feed+json")),
    Parser("mastodon", MASTODON_CASES, status, _serve_mastodon),
    Parser("bluesky", BLUESKY_CASES, view, _serve_bluesky),
]
GOOD = 3


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.name)
def test_each_poisoned_post_costs_only_itself(
    parser: Parser, tmp_path: Path, http_server: TestServer, store_url: str
) -> None:
    batch = [parser.good(n) for n in range(GOOD)]
    for case in parser.cases:  # poisoned posts between the good ones
        batch.insert(len(batch) // 2, case.post)
    sources = parser.serve(http_server, batch)
    collect_section = (
        TEST_COLLECT
        + f'mastodon_via = "api"\nbluesky_appview = "{http_server.url("/appview")}"\n'
        + f'[collect.base_urls]\n"social.example" = "{http_server.url("/s1")}"\n'
    )
    settings = settings_from(tmp_path, f'[digest]\ndatabase = "{store_url}"\n\n' + sources, collect=collect_section)
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        (result,) = report.results
        posts = store.posts()
        (state,) = store.source_states().values()
    skipped = sum(1 for c in parser.cases if not c.stored)
    readable = GOOD + len(parser.cases) - skipped
    assert result.status == "ok", result.error
    assert result.fetched == len(posts) == readable, [p.url for p in posts]
    assert f"{skipped} post{'s' if skipped != 1 else ''} skipped as unreadable (first: " in state.note
    assert any(n.startswith(f"{skipped} post") for n in result.notes)
    assert all("\x00" not in p.text + p.html for p in posts)
    assert not any(len(p.uri) > 2048 for p in posts)


def test_empty_hashtag_is_an_ordinary_link(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The known crash: ``<a class="hashtag" href="...">#</a>`` has no tag name; the post is read,
    with no empty tag, and `sources status` shows the skip note of the poisoned posts beside it."""
    http_server.route(
        "/rss.xml",
        Response(
            rss([rss_item(1, body=EMPTY_HASHTAG), rss_item(2, title="T" * 20_000)]),
            headers={"Content-Type": "application/rss+xml"},
        ),
    )
    settings = settings_from(tmp_path, f'[[sources]]\nfeed = "{http_server.url("/rss.xml")}"\n')
    with Store.open(settings.database_url) as store:
        collect(settings, store, now=NOW)
        (post,) = store.posts()
    assert post.tags == () and "Read # now" in post.text
    assert run_cli("--config", str(settings.path), "sources", "status") == 0
    shown = capsys.readouterr().out
    assert (
        f"note    feed:{http_server.url('/rss.xml')}: 1 post skipped as unreadable (first: ValueError: title is"
        in shown
    )

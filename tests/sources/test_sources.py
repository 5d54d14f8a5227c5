"""`digest sources add`, `list` and `status`: feed discovery, checking by fetching once from a real
HTTP server on 127.0.0.1, duplicates, and a feeds.toml whose every other byte survives the edit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import NOW, make_post, run_cli
from httpserver import Response, TestServer

from digest import config
from digest.errors import ConfigError, SourceError
from digest.models import Decision, SourceState
from digest.sources import (
    Candidate,
    ChoiceNeeded,
    add_source,
    feed_links,
    insert_sources,
    parse_source,
    source_status,
)
from digest.store import Store

FIX = Path(__file__).parents[1] / "fixtures"
SHARED_PAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "feeds" / "miniflux_encoding"
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
HTML = {"Content-Type": "text/html; charset=utf-8"}

# A feeds.toml with comments everywhere, a multi-line string that contains "[[sources]]", an
# array spread over lines and tables after the sources: all of it must survive an add.
COMMENTED = """\
# feeds.toml for the tests: comments and layout must survive `digest sources add`.

[digest]
title = "Test digest"     # a trailing comment
database = "digest.db"

[collect]
connect_timeout = 2
read_timeout = 2
total_timeout = 5
retries = 0
servers = ["social.example"]

[collect.base_urls]
"social.example" = "BASE/s1"

# ---- Feeds ------------------------------------------------------------------

[[sources]]
feed = "https://blog.hl7.org/rss.xml"   # the HL7 blog
name = "HL7 blog"

[[sources]]
mastodon = "@alice@social.example"

[[sources]]
hashtag = "HITsm"
# servers = ["hachyderm.io"]   a commented-out key, kept with its table

# ---- Accounts (examples) -------------------------------------------------------
#   [[sources]]
#   mastodon = "@someone@mastodon.social"

[[topics]]
name = "Interop"
description = \"\"\"Exchanging health data: HL7 and FHIR.
[[sources]] inside a multi-line string is not a header.\"\"\"
keywords = [
  "FHIR",   # a comment inside an array
  "HL7",
]

[mail]
from = "digest <digest@example.org>"
"""
LAST_SOURCE_LINE = '# servers = ["hachyderm.io"]   a commented-out key, kept with its table\n'


def write_config(tmp_path: Path, server: TestServer | None = None, text: str = COMMENTED) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(text.replace("BASE", server.base_url if server else "http://127.0.0.1:9"), encoding="utf-8")
    return path


def added_part(before: str, after: str) -> str:
    """What was inserted, asserting that everything else is byte-for-byte as it was."""
    cut = before.index(LAST_SOURCE_LINE) + len(LAST_SOURCE_LINE)
    assert after.startswith(before[:cut]) and after.endswith(before[cut:]), "the rest of the file changed"
    return after[cut : len(after) - len(before) + cut]


def serve_feed(server: TestServer, path: str = "/feed.xml", name: str = "feeds/rss20.xml") -> str:
    server.route(path, Response((FIX / name).read_bytes(), headers=RSS))
    return server.url(path)


def serve_page(server: TestServer, path: str, name: str) -> str:
    body = (FIX / "pages" / name).read_bytes().replace(b"HOST", server.base_url.removeprefix("http://").encode())
    server.route(path, Response(body, headers=HTML))
    return server.url(path)


# -- what the user typed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "kind", "value"),
    [
        ("https://example.org/feed.xml", "feed", "https://example.org/feed.xml"),
        ("example.org/blog", "feed", "https://example.org/blog"),
        ("feed://example.org/rss", "feed", "http://example.org/rss"),
        ("@alice@social.example", "mastodon", "@alice@social.example"),
        ("alice@social.example", "mastodon", "@alice@social.example"),
        ("someone.bsky.social", "bluesky", "someone.bsky.social"),
        ("@someone.bsky.social", "bluesky", "someone.bsky.social"),
        ("@jay.custom.example", "bluesky", "jay.custom.example"),
        ("did:plc:z72i7hdynmk6r22z27h6tvur", "bluesky", "did:plc:z72i7hdynmk6r22z27h6tvur"),
        ("#FHIR", "hashtag", "FHIR"),
        ("https://social.example/@alice.rss", "mastodon", "@alice@social.example"),
        ("https://social.example/tags/HITsm.rss", "hashtag", "HITsm"),
        ("https://bsky.app/profile/jay.bsky.team/rss", "bluesky", "jay.bsky.team"),
        ("http://127.0.0.1:8080/@alice.rss", "feed", "http://127.0.0.1:8080/@alice.rss"),
    ],
)
def test_what_was_typed_is_recognised(typed: str, kind: str, value: str) -> None:
    source = parse_source(typed)
    assert (source.kind, source.value) == (kind, value)


@pytest.mark.parametrize("typed", ["hello world", "ftp://example.org/feed", "@nobody", "#not a tag", ""])
def test_junk_is_refused_saying_what_is_accepted(typed: str) -> None:
    with pytest.raises(SourceError):
        parse_source(typed)


# -- finding a page's feeds (no I/O) -----------------------------------------------------------


def test_page_with_one_feed_link_relative_to_the_page() -> None:
    body = (FIX / "pages" / "one.html").read_bytes()
    assert feed_links(body, "https://interop.example/weekly/index.html") == [
        Candidate("https://interop.example/weekly/feed.xml", "Interop Weekly » Feed", "RSS", "link")
    ]


def test_page_with_several_feed_links_in_document_order() -> None:
    body = (FIX / "pages" / "several.html").read_bytes().replace(b"HOST", b"hit.example")
    found = feed_links(body, "http://hit.example/blog/index.html", "text/html; charset=utf-8")
    assert [(c.url, c.type) for c in found] == [
        ("http://hit.example/blog/rss.xml", "RSS"),
        ("http://hit.example/blog/atom.xml", "Atom"),
        ("http://hit.example/feed.json", "JSON Feed"),
        ("http://hit.example/blog/comments/rss.xml", "RSS"),
    ]
    assert found[0].title == "Health IT Today - posts"


def test_base_href_wins_over_the_page_url() -> None:
    body = (FIX / "pages" / "base.html").read_bytes()
    found = feed_links(body, "https://telehealth.example/site/page.html")
    assert [c.url for c in found] == [
        "https://telehealth.example/news/feed.atom",
        "https://feeds.telehealth.example/rss",
    ]


def test_page_without_feed_links_and_junk_bodies() -> None:
    assert feed_links((FIX / "pages" / "none.html").read_bytes(), "https://clinic-notes.example/") == []
    assert feed_links(b"", "https://x.example/") == []
    assert feed_links(b"\x00\xff\xfe binary", "https://x.example/") == []


# -- add: the file keeps every byte but the new table ------------------------------------------


def test_add_feed_keeps_every_other_byte(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_text(encoding="utf-8")
    url = serve_feed(http_server)

    assert run_cli("--config", str(path), "sources", "add", url) == 0

    after = path.read_text(encoding="utf-8")
    assert added_part(before, after) == f'\n[[sources]]\nfeed = "{url}"\nname = "Health IT Weekly"\n'
    settings = config.load(path)
    assert settings.sources[-1] == config.FeedSource(feed=url, name="Health IT Weekly")
    assert "added feed" in capsys.readouterr().out
    assert http_server.hits("/feed.xml") == 1


def test_add_appends_at_the_end_of_a_file_without_sources(tmp_path: Path, http_server: TestServer) -> None:
    text = '# just settings\n[digest]\ntitle = "x"\n\n# the end\n'
    path = write_config(tmp_path, http_server, text)
    url = serve_feed(http_server)
    assert run_cli("--config", str(path), "sources", "add", url, "--name", 'My "feed"') == 0
    assert path.read_text(encoding="utf-8") == text + f'\n[[sources]]\nfeed = "{url}"\nname = "My \\"feed\\""\n'


def test_add_json_says_what_was_added_and_refuses_in_json_too(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, http_server, '[digest]\ntitle = "x"\n')
    url = serve_feed(http_server)
    assert run_cli("--config", str(path), "sources", "add", url, "--json") == 0
    added = json.loads(capsys.readouterr().out)
    assert added["path"] == str(path) and added["checked"] is True and added["skipped"] == []
    [only] = added["added"]
    assert url in only["source"] and only["posts"] > 0
    assert run_cli("--config", str(path), "sources", "add", url, "--json") != 0  # already followed
    refused = json.loads(capsys.readouterr().out)
    assert "already" in refused["error"] and refused["exit_status"] in (1, 2)


def test_crlf_file_stays_crlf(tmp_path: Path) -> None:
    text = '[[sources]]\r\nfeed = "https://a.example/feed"\r\n\r\n[mail]\r\nfrom = "x <x@example.org>"\r\n'
    new, inserted = insert_sources(text, [{"feed": "https://b.example/feed"}])
    assert inserted == '\r\n[[sources]]\r\nfeed = "https://b.example/feed"\r\n'
    assert new == text.replace("\r\n\r\n[mail]", "\r\n" + inserted + "\r\n[mail]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 'NEW'),
        ('[digest]\ntitle = "x"', '[digest]\ntitle = "x"\n\nNEW'),
        ('[[sources]]\nfeed = "https://a.example/f"\n# mine, right under it\n\n# about mail\n[mail]\n',
         '[[sources]]\nfeed = "https://a.example/f"\n# mine, right under it\n\nNEW\n# about mail\n[mail]\n'),
        ('[[sources]]\nfeed = "https://a.example/f"\n# about mail, right above it\n[mail]\n',
         '[[sources]]\nfeed = "https://a.example/f"\n\nNEW\n# about mail, right above it\n[mail]\n'),
        ("[[ sources ]]\nhashtag = 'x'\n[[sources]]\nhashtag = 'y'\n[[topics]]\nname = 'z'\n",
         "[[ sources ]]\nhashtag = 'x'\n[[sources]]\nhashtag = 'y'\n\nNEW\n[[topics]]\nname = 'z'\n"),
    ],
    ids=["empty", "no-newline-at-end", "comment-under-table", "comment-above-header", "spaced-header"],
)  # fmt: skip
def test_where_the_new_table_goes(text: str, expected: str) -> None:
    new, inserted = insert_sources(text, [{"feed": "https://b.example/feed"}])
    assert new == expected.replace("NEW", '[[sources]]\nfeed = "https://b.example/feed"\n')
    assert new.replace(inserted, "", 1).rstrip("\n") == text.rstrip("\n")


def test_terminal_chooser_reads_numbers_or_all() -> None:
    from click.testing import CliRunner

    from digest.cli._sources import _choose_feeds

    candidates = [Candidate(f"https://x.example/{i}.xml") for i in range(3)]
    for typed, expected in (("1,3\n", [0, 2]), ("all\n", [0, 1, 2]), ("7\nx\n2\n", [1]), ("\n", [0])):
        with CliRunner().isolation(input=typed):
            assert _choose_feeds("https://x.example/", candidates) == expected


def test_no_check_writes_without_fetching(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_text(encoding="utf-8")
    assert run_cli("--config", str(path), "sources", "add", "--no-check", http_server.url("/never.xml")) == 0
    assert http_server.requests() == []
    assert added_part(before, path.read_text(encoding="utf-8")) == (
        f'\n[[sources]]\nfeed = "{http_server.url("/never.xml")}"\n'
    )


# -- add: refused with the reason, file untouched -----------------------------------------------


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (Response(b"gone", status=404), "HTTP 404"),
        (Response(b"gone", status=410), "HTTP 410"),
        (Response(b'{"not": "a feed"}', headers={"Content-Type": "application/json"}), "not a feed"),
        (Response(b"\x89PNG\r\n\x1a\n" + bytes(64), headers={"Content-Type": "image/png"}), "not a feed"),
    ],
    ids=["404", "410", "json", "image"],
)
def test_add_dead_or_non_feed_url_is_refused(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str], response: Response, reason: str
) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_bytes()
    http_server.route("/dead", response)

    assert run_cli("--config", str(path), "sources", "add", http_server.url("/dead")) == 1

    error = capsys.readouterr().err
    assert reason in error and http_server.url("/dead") in error and len(error.strip().splitlines()) == 1
    assert path.read_bytes() == before


def test_add_unreachable_host_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    before = path.read_bytes()
    assert run_cli("--config", str(path), "sources", "add", "http://127.0.0.1:9/feed.xml") == 1
    assert "connection failed" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_invalid_entry_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    before = path.read_bytes()
    assert run_cli("--config", str(path), "sources", "add", "#FHIR", "--server", "not a server!", "--no-check") == 1
    assert "not a server name" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_a_written_file_that_does_not_load_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    before = path.read_bytes()
    settings = config.load(path)

    def refuse(_: object = None) -> config.Settings:
        raise ConfigError(f"{path}:1: simulated failure after writing")

    monkeypatch.setattr(config, "load", refuse)
    with pytest.raises(SourceError, match="left as it was"):
        add_source(settings, "https://new.example/feed.xml", now=NOW, check=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.toml"]  # no temporary file left


# -- add: duplicates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "https://blog.hl7.org/rss.xml",
        "http://BLOG.hl7.org/rss.xml/",
        "https://blog.hl7.org/rss.xml?utm_source=mastodon&utm_medium=social",
        "@Alice@Social.example",
        "https://social.example/@alice.rss",
        "#hitsm",
        "#HITsm",
    ],
)
def test_duplicates_are_refused_naming_the_line(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str], typed: str
) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_bytes()
    assert run_cli("--config", str(path), "sources", "add", typed) == 1
    error = capsys.readouterr().err
    assert "already followed" in error and f"{path}:" in error
    assert path.read_bytes() == before
    assert http_server.requests() == []  # refused before fetching anything


# -- add: a website's feeds ---------------------------------------------------------------------


def test_website_with_one_feed_adds_it(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, http_server)
    page = serve_page(http_server, "/weekly/index.html", "one.html")
    feed = serve_feed(http_server, "/weekly/feed.xml")

    assert run_cli("--config", str(path), "sources", "add", page) == 0

    assert config.load(path).sources[-1] == config.FeedSource(feed=feed, name="Health IT Weekly")
    assert f"found on {page}" in capsys.readouterr().out


def test_website_with_several_feeds_needs_a_choice(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_bytes()
    page = serve_page(http_server, "/blog/index.html", "several.html")
    serve_feed(http_server, "/blog/rss.xml")
    serve_feed(http_server, "/blog/atom.xml", "feeds/atom10.xml")
    http_server.route("/feed.json", Response((FIX / "feeds/jsonfeed11.json").read_bytes()))

    assert run_cli("--config", str(path), "sources", "add", page) == 2  # no terminal, no --pick: usage error
    error = capsys.readouterr().err
    assert "offers 4 feeds" in error and "--pick" in error
    assert "2. Atom 'Health IT Today - Atom'" in error and "/blog/comments/rss.xml" in error
    assert path.read_bytes() == before

    assert run_cli("--config", str(path), "sources", "add", page, "--pick", "9") == 2
    assert "--pick 9 is not one of 1 to 4" in capsys.readouterr().err

    assert run_cli("--config", str(path), "sources", "add", page, "--pick", "2") == 0
    assert config.load(path).sources[-1] == config.FeedSource(
        feed=http_server.url("/blog/atom.xml"), name="Digital Health Engineering"
    )

    # --all adds the rest: the Atom feed is followed now, the comments feed is dead (404)
    assert run_cli("--config", str(path), "sources", "add", page, "--all") == 0
    captured = capsys.readouterr()
    feeds = [s.feed for s in config.load(path).sources if isinstance(s, config.FeedSource)]
    assert feeds[-3:] == [http_server.url(p) for p in ("/blog/atom.xml", "/blog/rss.xml", "/feed.json")]
    assert "already followed" in captured.err and "comments/rss.xml" in captured.err and "HTTP 404" in captured.err


def test_chooser_is_asked_when_there_are_several(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    page = serve_page(http_server, "/blog/index.html", "several.html")
    serve_feed(http_server, "/blog/rss.xml")
    http_server.route("/feed.json", Response((FIX / "feeds/jsonfeed11.json").read_bytes()))
    asked: list[list[Candidate]] = []

    def choose(where: str, candidates: list[Candidate]) -> list[int]:
        assert where == page
        asked.append(candidates)
        return [0, 2]

    report = add_source(config.load(path), page, now=NOW, choose=choose)
    assert len(asked) == 1 and len(asked[0]) == 4
    assert [c.source.value for c in report.added] == [http_server.url("/blog/rss.xml"), http_server.url("/feed.json")]
    with pytest.raises(ChoiceNeeded):
        add_source(config.load(path), page, now=NOW)


def test_base_href_is_followed_over_http(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    page = serve_page(http_server, "/site/page.html", "base.html")
    feed = serve_feed(http_server, "/news/feed.atom", "feeds/atom10.xml")
    report = add_source(config.load(path), page, now=NOW, pick=1)
    assert [c.source.value for c in report.added] == [feed]


def test_common_paths_are_tried_when_the_page_links_no_feed(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    page = serve_page(http_server, "/", "none.html")
    feed = serve_feed(http_server, "/index.xml")
    http_server.route("/rss", Response(redirect_to="/index.xml", status=301))  # the same feed again

    report = add_source(config.load(path), page, now=NOW)

    assert [c.source.value for c in report.added] == [feed]
    assert http_server.hits("/feed.json") == 1  # every common path was tried


def test_page_with_no_feed_anywhere_is_refused(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_bytes()
    page = serve_page(http_server, "/about/", "none.html")
    with pytest.raises(SourceError, match="web page with no feed"):
        add_source(config.load(path), page, now=NOW)
    assert path.read_bytes() == before
    assert http_server.hits("/about/feed.xml") == 1 and http_server.hits("/feed.xml") == 1  # below and at the root


def _follow(path: Path, *feeds: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.writelines(f'\n[[sources]]\nfeed = "{feed}"\n' for feed in feeds)


def test_a_page_whose_feeds_are_all_followed_says_so_naming_each_line(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, http_server)
    page = serve_page(http_server, "/", "none.html")  # no <link rel="alternate">: common paths answer
    feeds = [serve_feed(http_server, p) for p in ("/feed", "/rss", "/atom.xml")]
    _follow(path, *feeds)
    before = path.read_bytes()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert run_cli("--config", str(path), "sources", "add", page) == 1  # nothing to choose: not bad usage
    error = capsys.readouterr().err
    assert f"not added: every feed {page} offers (common paths) is followed already:" in error
    for feed in feeds:
        line = lines.index(f'feed = "{feed}"')  # the [[sources]] header above it, 1-based
        assert f"<{feed}>: already followed: {path}:{line}: feed = '{feed}'" in error
    assert "--pick" not in error and path.read_bytes() == before


def test_feeds_already_followed_are_marked_and_never_offered(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, http_server)
    page = serve_page(http_server, "/", "none.html")
    followed, *fresh = [serve_feed(http_server, p) for p in ("/feed", "/rss", "/atom.xml")]
    _follow(path, followed)
    assert run_cli("--config", str(path), "sources", "add", page) == 2  # two new ones: choose
    error = capsys.readouterr().err
    assert f"{page} offers 2 feeds not followed yet (and 1 followed already); choose with --pick N" in error
    assert f"1. feed 'Health IT Weekly' <{fresh[0]}>\n  2. feed 'Health IT Weekly' <{fresh[1]}>\n" in error
    assert f"  -  feed 'Health IT Weekly' <{followed}>: already followed: {path}:" in error
    assert run_cli("--config", str(path), "sources", "add", page, "--pick", "2") == 0
    shown = capsys.readouterr()
    assert f"skipped {followed}: already followed" in shown.err
    assert [s.feed for s in config.load(path).sources if isinstance(s, config.FeedSource)][-1] == fresh[1]


@pytest.mark.skipif(not SHARED_PAGES.is_dir(), reason="../shared/data/feeds/miniflux_encoding is not there")
@pytest.mark.parametrize("name", sorted(p.name for p in SHARED_PAGES.glob("*.html")) if SHARED_PAGES.is_dir() else [])
def test_real_pages_without_feed_links(tmp_path: Path, http_server: TestServer, name: str) -> None:
    body = (SHARED_PAGES / name).read_bytes()
    assert feed_links(body, "https://example.org/") == []
    http_server.route("/", Response(body, headers={"Content-Type": "text/html"}))
    path = write_config(tmp_path, http_server)
    with pytest.raises(SourceError, match="web page with no feed"):
        add_source(config.load(path), http_server.url("/"), now=NOW)


# -- add: accounts and hashtags, checked through their jobs ----------------------------------


def test_mastodon_account_is_checked_through_the_api(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    lookup = (FIX / "mastodon" / "account_lookup.json").read_bytes().replace(b"alice", b"dana")
    http_server.route("/s1/api/v1/accounts/lookup", Response(lookup, headers={"Content-Type": "application/json"}))
    statuses = (FIX / "mastodon" / "account_statuses_page1.json").read_bytes()
    http_server.route(
        "/s1/api/v1/accounts/109282590720019145/statuses",
        Response(statuses, headers={"Content-Type": "application/json"}),
    )

    report = add_source(config.load(path), "@dana@social.example", now=NOW)

    assert report.added[0].posts > 0
    assert config.load(path).sources[-1] == config.MastodonSource(mastodon="@dana@social.example")


def test_unknown_mastodon_account_is_refused(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_bytes()
    with pytest.raises(SourceError, match="HTTP 404"):
        add_source(config.load(path), "@nobody@social.example", now=NOW)
    assert http_server.hits("/s1/api/v1/accounts/lookup") == 1 and http_server.hits("/s1/@nobody.rss") == 1
    assert path.read_bytes() == before


def test_hashtag_uses_the_configured_servers_unless_told(tmp_path: Path, http_server: TestServer) -> None:
    path = write_config(tmp_path, http_server)
    before = path.read_text(encoding="utf-8")
    http_server.route(
        "/s1/api/v1/timelines/tag/FHIR",
        Response(
            (FIX / "mastodon" / "tag_HITsm_server2.json").read_bytes(), headers={"Content-Type": "application/json"}
        ),
    )
    add_source(config.load(path), "#FHIR", now=NOW)
    assert added_part(before, path.read_text(encoding="utf-8")) == '\n[[sources]]\nhashtag = "FHIR"\n'

    add_source(config.load(path), "#TEFCA", now=NOW, servers=["hachyderm.example"], check=False)
    assert config.load(path).sources[-1] == config.HashtagSource(hashtag="TEFCA", servers=("hachyderm.example",))


# -- list and status ---------------------------------------------------------------------------


STATUS_CONFIG = """\
[digest]
database = "digest.db"

[collect]
servers = ["social.example"]

[[sources]]
feed = "https://noisy.example/feed"
name = "Noisy"

[[sources]]
feed = "https://gone.example/feed"

[[sources]]
mastodon = "@resting@social.example"

[[sources]]
feed = "https://quiet.example/feed"

[[sources]]
hashtag = "FHIR"
name = "FHIR tag"

[[sources]]
bluesky = "new.bsky.social"
"""


def fill_store(path: Path) -> config.Settings:
    """A store as a few weeks of collecting and filtering would leave it."""
    settings = config.load(path)
    noisy, gone, resting, quiet, tag = (
        "feed:https://noisy.example/feed",
        "feed:https://gone.example/feed",
        "mastodon:@resting@social.example",
        "feed:https://quiet.example/feed",
        "hashtag:#FHIR@social.example",
    )
    with Store.open(settings.database_url) as store:
        ok = {"status": "ok", "last_attempt": NOW - timedelta(hours=1), "last_success": NOW - timedelta(hours=1)}
        noisy_posts = [make_post(f"https://noisy.example/p/{i}", source=noisy) for i in range(10)]
        tag_posts = [make_post(f"https://social.example/@x/{i}", source=tag) for i in range(4)]
        old_post = make_post("https://quiet.example/p/old", source=quiet, published=NOW - timedelta(days=45))
        store.add_posts(noisy, noisy_posts, SourceState(noisy, "feed", "https://noisy.example/feed", **ok))
        unchanged = {**ok, "status": "not_modified"}  # its last fetch answered 304
        store.add_posts(tag, tag_posts, SourceState(tag, "hashtag", "https://social.example/tags/FHIR", **unchanged))
        store.add_posts(quiet, [old_post], SourceState(quiet, "feed", "https://quiet.example/feed", **ok))
        store.save_source_state(
            SourceState(gone, "feed", "https://gone.example/feed", status="dead", failures=1,
                        last_error="https://gone.example/feed: HTTP 410 Gone: the feed is gone",
                        last_attempt=NOW - timedelta(hours=1), last_success=NOW - timedelta(days=20))
        )  # fmt: skip
        store.save_source_state(
            SourceState(resting, "mastodon", "https://social.example/@resting", status="failed", failures=6,
                        last_error="https://social.example/api/v1/accounts/lookup?acct=resting: timed out",
                        last_attempt=NOW - timedelta(hours=2), next_attempt=NOW + timedelta(hours=22))
        )  # fmt: skip
        kept = Decision(("Interop",), {"Interop": 0.5}, {"Interop": 0.2}, 0.1)
        dropped = Decision((), {"Interop": 0.05}, {"Interop": 0.2}, 0.6)
        verdicts = [(p.id, dropped if i < 8 else kept) for i, p in enumerate(noisy_posts)]
        verdicts += [(p.id, dropped if i == 0 else kept) for i, p in enumerate(tag_posts)]
        store.save_filter_run(NOW, NOW - timedelta(days=7), NOW, ["Interop"], verdicts)
    return settings


def test_status_says_which_sources_are_worth_following(tmp_path: Path) -> None:
    path = write_config(tmp_path, text=STATUS_CONFIG)
    settings = fill_store(path)
    with Store.open(settings.database_url) as store:
        rows = {r.key: r for r in source_status(settings, store, now=NOW)}

    assert list(rows) == [
        "feed:https://noisy.example/feed",
        "feed:https://gone.example/feed",
        "mastodon:@resting@social.example",
        "feed:https://quiet.example/feed",
        "hashtag:#FHIR@social.example",
        "bluesky:new.bsky.social",
    ]
    noisy = rows["feed:https://noisy.example/feed"]
    assert (noisy.name, noisy.posts_week, noisy.filtered, noisy.dropped) == ("Noisy", 10, 10, 8)
    assert noisy.hint_kind == "noise"
    assert noisy.dropped_share == 0.8 and "dropped 8 of its 10 posts" in noisy.hint
    assert rows["feed:https://gone.example/feed"].hint_kind == "dead"
    assert "HTTP 410" in rows["feed:https://gone.example/feed"].hint
    resting = rows["mastodon:@resting@social.example"]
    assert (resting.hint_kind, resting.failures) == ("dead", 6) and "resting until" in resting.hint
    quiet = rows["feed:https://quiet.example/feed"]
    assert (quiet.hint_kind, quiet.posts_week) == ("dead", 0) and "no post in 45 days" in quiet.hint
    tag = rows["hashtag:#FHIR@social.example"]
    assert (tag.name, tag.posts_week, tag.filtered, tag.dropped, tag.hint_kind) == ("FHIR tag", 4, 4, 1, "")
    new = rows["bluesky:new.bsky.social"]
    assert (new.status, new.last_success, new.hint_kind) == ("new", None, "")


def test_status_and_list_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, text=STATUS_CONFIG)
    fill_store(path)

    assert run_cli("--config", str(path), "sources", "status", "--json") == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 6
    noisy = records[0]
    assert noisy["key"] == "feed:https://noisy.example/feed"
    assert (noisy["posts_week"], noisy["dropped_share"], noisy["hint_kind"]) == (10, 0.8, "noise")
    assert set(noisy) >= {"status", "last_error", "failures", "last_success", "posts_week", "dropped_share", "hint"}

    assert run_cli("--config", str(path), "sources", "status") == 0
    table = capsys.readouterr().out
    assert "mostly noise" in table and "resting until" in table and "1 noise" in table
    assert "modified" in table and "not_modified" not in table  # in words (which rich wraps between words)

    assert run_cli("--config", str(path), "sources", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[1] == {"kind": "feed", "key": "feed:https://gone.example/feed", "name": "", "status": "dead"}
    assert run_cli("--config", str(path), "sources", "list") == 0
    assert "hashtag:#FHIR@social.example" in capsys.readouterr().out


def test_status_before_any_collection_creates_no_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, text=STATUS_CONFIG)
    assert run_cli("--config", str(path), "sources", "status", "--json") == 0
    assert {r["status"] for r in json.loads(capsys.readouterr().out)} == {"new"}
    assert not (tmp_path / "digest.db").exists()

"""OPML: reading what Feedly, Inoreader, NetNewsWire, Miniflux and FreshRSS export, `digest sources
import` (one write, idempotent, bad files refused with their line) and `digest sources export`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import NOW, run_cli
from httpserver import Response, TestServer

from digest import config
from digest.opml import OpmlError, OpmlFeed, OpmlGroup, parse_opml, read_opml, render_opml
from digest.sources import export_opml, import_opml

FIX = Path(__file__).parents[1] / "fixtures"
OPML = FIX / "opml"

CONFIG = """\
# Sources for the import tests; this comment and the layout below must survive.

[digest]
title = "Health IT weekly"   # shown in every edition

[collect]
servers = ["social.example", "hachyderm.example"]

[[sources]]
feed = "https://blog.hl7.org/rss.xml"
name = "HL7 blog"

# ---- Subscribers ----
[[subscribers]]
email = "reader@example.org"
"""
LAST_SOURCE_LINE = 'name = "HL7 blog"\n'


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def inserted(before: str, after: str) -> str:
    """The text an import inserted, asserting every other byte is as it was."""
    cut = before.index(LAST_SOURCE_LINE) + len(LAST_SOURCE_LINE)
    assert after.startswith(before[:cut]) and after.endswith(before[cut:]), "the rest of the file changed"
    return after[cut : len(after) - len(before) + cut]


# -- reading each reader's export --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "urls", "folders"),
    [
        (
            "feedly.opml",
            [
                "https://histalk2.com/feed/",
                "https://www.healthcareittoday.com/feed/",
                "https://www.fiercehealthcare.com/rss/xml",
                "https://blog.hl7.org/rss.xml",
                "https://histalk2.com/feed/",
            ],
            {("Health IT",), ("Interoperability",)},
        ),
        (
            "inoreader.xml",
            [
                "https://www.statnews.com/feed/",
                "https://www.healthaffairs.org/action/showFeed?type=etoc&feed=rss&jc=hlthaff",
                "https://kffhealthnews.org/feed/",
            ],
            {("News",), ()},
        ),
        (
            "netnewswire.opml",
            [
                "https://thehealthcareblog.com/feed/",
                "https://social.example/@alice.rss",
                "https://social.example/tags/HITsm.rss",
                "https://fhir-blog.example/atom.xml",
            ],
            {(), ("Mastodon",), ("Interop",)},
        ),
        (
            "miniflux.opml",
            [
                "https://www.healthcaredive.com/feeds/news/",
                "https://digitalhealth.example/feed.json",
                "https://telehealth.example/news/feed.atom",
            ],
            {("All",), ("Telehealth",)},
        ),
        (
            "freshrss.opml",
            [
                "https://github.com/FreshRSS/FreshRSS/releases.atom",
                "https://healthitsecurity.example/feed",
                "https://bsky.app/profile/jay.bsky.team/rss",
            ],
            {("Uncategorized",), ("Health IT",)},
        ),
        (
            "nested.opml",
            [
                "https://argonaut.example/feed.xml",
                "https://davinci.example/rss.xml",
                "https://buzz.example/feed/",
                "https://top.example/index.xml",
            ],
            {("Work", "Health IT", "Interop"), ("Work", "Health IT"), ()},
        ),
    ],
)
def test_each_readers_export_is_read(name: str, urls: list[str], folders: set[tuple[str, ...]]) -> None:
    document = read_opml(OPML / name)
    assert [f.url for f in document.feeds] == urls
    assert {f.folders for f in document.feeds} == folders
    assert all(f.title for f in document.feeds)
    assert document.ignored == []


def test_titles_entities_and_lines() -> None:
    inoreader = read_opml(OPML / "inoreader.xml")
    assert inoreader.title == "Subscriptions of Jane from Inoreader [https://www.inoreader.com]"
    assert inoreader.feeds[1].title == "Health Affairs Forefront & Blog"
    assert inoreader.feeds[1].html_url == "https://www.healthaffairs.org"
    assert [f.line for f in inoreader.feeds] == [8, 9, 11]


def test_duplicates_missing_titles_and_odd_attributes() -> None:
    document = read_opml(OPML / "duplicates.opml")
    assert [(f.url, f.title) for f in document.feeds[:6]] == [
        ("https://cafe-informatics.example/feed", "Café Informatics"),  # ISO-8859-1 decoded, xmlurl in lower case
        ("https://untitled.example/rss.xml", ""),
        ("https://blank-title.example/atom.xml", ""),
        ("https://CAFE-informatics.example/feed/?utm_source=opml", "Same, with tracking and a slash"),
        ("http://cafe-informatics.example/feed", "Same, over http"),  # XMLURL
        ("http://oldscheme.example/rss", "Old feed:// scheme"),
    ]
    assert document.ignored == [
        (15, "'javascript:alert(1)' is not an http(s) feed URL"),
        (16, "outline 'A feed without its URL' has type='rss' but no xmlUrl"),
    ]


def test_malformed_file_is_refused_with_its_line() -> None:
    with pytest.raises(OpmlError, match=r"malformed\.opml:6: not well-formed XML"):
        read_opml(OPML / "malformed.opml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not well-formed XML"),
        ((FIX / "feeds" / "rss20.xml").read_bytes(), "not an OPML file (the root element is <rss>"),
        (b'<?xml version="1.0"?>\n<opml version="2.0"><head/></opml>', "without a <body>"),
        (b"<opml><body><outline text='a'></body></opml>", ":1: not well-formed XML"),
    ],
    ids=["empty", "rss", "no-body", "mismatched"],
)
def test_files_that_are_not_opml(data: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_opml(data, "list.opml")


def test_entities_are_never_resolved() -> None:
    xxe = (
        b'<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://x.example/feed"/></body></opml>'
    )
    with pytest.raises(OpmlError, match=":3: "):
        parse_opml(xxe, "xxe.opml")
    laughs = b'<?xml version="1.0"?>\n<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    for level in range(1, 9):
        laughs += f'<!ENTITY {"a" * (level + 1)} "{("&" + "a" * level + ";") * 10}">'.encode()
    laughs += b']>\n<opml><body><outline text="&aaaaaaaaa;" xmlUrl="https://x.example/feed"/></body></opml>'
    try:
        document = parse_opml(laughs, "laughs.opml")
    except OpmlError:
        return  # refused: fine
    assert len(document.feeds[0].title) < 1000  # or left unexpanded: fine too


# -- import ---------------------------------------------------------------------------------------


def test_import_adds_every_feed_once_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    before = path.read_text(encoding="utf-8")

    assert run_cli("--config", str(path), "sources", "import", str(OPML / "feedly.opml")) == 0
    assert capsys.readouterr().out.strip() == "added 3, skipped 2 (1 already followed, 1 listed twice)"
    after = path.read_text(encoding="utf-8")
    assert inserted(before, after) == (
        '\n[[sources]]\nfeed = "https://histalk2.com/feed/"\nname = "HIStalk"\n'
        '\n[[sources]]\nfeed = "https://www.healthcareittoday.com/feed/"\nname = "Healthcare IT Today"\n'
        '\n[[sources]]\nfeed = "https://www.fiercehealthcare.com/rss/xml"\nname = "Fierce Healthcare"\n'
    )

    assert run_cli("--config", str(path), "sources", "import", str(OPML / "feedly.opml")) == 0
    assert capsys.readouterr().out.strip() == "added 0, skipped 5 (5 already followed)"
    assert path.read_text(encoding="utf-8") == after  # not touched at all


@pytest.mark.parametrize(
    "name", ["feedly.opml", "inoreader.xml", "netnewswire.opml", "miniflux.opml", "freshrss.opml", "nested.opml"]
)
def test_every_readers_export_imports_cleanly(tmp_path: Path, name: str) -> None:
    path = write_config(tmp_path)
    before = path.read_text(encoding="utf-8")
    report = import_opml(config.load(path), OPML / name, now=NOW)
    inserted(before, path.read_text(encoding="utf-8"))
    settings = config.load(path)
    assert len(settings.sources) == 1 + len(report.added)
    assert import_opml(settings, OPML / name, now=NOW).added == []


def test_mastodon_and_bluesky_feeds_become_those_sources(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    import_opml(config.load(path), OPML / "netnewswire.opml", now=NOW)
    import_opml(config.load(path), OPML / "freshrss.opml", now=NOW)
    sources = config.load(path).sources
    assert config.MastodonSource(mastodon="@alice@social.example", name="Alice (@alice@social.example)") in sources
    assert config.HashtagSource(hashtag="HITsm", servers=("social.example",)) in sources  # "#HITsm" said nothing more
    assert config.BlueskySource(bluesky="jay.bsky.team", name="Bluesky: Jay") in sources


def test_duplicates_and_bad_entries_are_skipped_with_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    assert run_cli("--config", str(path), "sources", "import", str(OPML / "duplicates.opml"), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == [
        {"feed": "https://cafe-informatics.example/feed", "name": "Café Informatics"},
        {"feed": "https://untitled.example/rss.xml"},
        {"feed": "https://blank-title.example/atom.xml"},
        {"feed": "http://oldscheme.example/rss", "name": "Old feed:// scheme"},
        {"hashtag": "FHIR", "servers": ["social.example", "hachyderm.example"]},
    ]
    assert [(s["why"], s["source"]) for s in report["skipped"]] == [
        ("invalid", f"{OPML / 'duplicates.opml'}:15"),
        ("invalid", f"{OPML / 'duplicates.opml'}:16"),
        ("twice", "https://CAFE-informatics.example/feed/?utm_source=opml"),
        ("twice", "http://cafe-informatics.example/feed"),
        ("followed", "https://blog.hl7.org/rss.xml"),
    ]
    assert config.load(path).sources[1].name == "Café Informatics"


def test_a_bad_file_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    before = path.read_bytes()
    assert run_cli("--config", str(path), "sources", "import", str(OPML / "malformed.opml")) == 1
    assert "malformed.opml:6: not well-formed XML" in capsys.readouterr().err
    assert run_cli("--config", str(path), "sources", "import", str(tmp_path / "missing.opml")) == 1
    assert "missing.opml: not found" in capsys.readouterr().err
    assert path.read_bytes() == before


def big_opml(feeds: int, folder_size: int = 50) -> bytes:
    """An export of ``feeds`` feeds in folders, as a large reader's looks."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0"><head><title>big</title></head><body>\n']
    for i in range(feeds):
        if i % folder_size == 0:
            out.append(("</outline>\n" if i else "") + f'<outline text="Folder {i // folder_size}">\n')
        out.append(f'<outline type="rss" text="Site {i}" xmlUrl="https://site{i}.example.org/feed.xml"/>\n')
    out.append("</outline>\n</body></opml>\n")
    return "".join(out).encode()


def test_a_file_over_the_size_cap_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import digest.opml

    monkeypatch.setattr(digest.opml, "MAX_BYTES", 2_000_000)  # the cap, lowered so the test stays small
    path = write_config(tmp_path)
    before = path.read_bytes()
    (tmp_path / "huge.opml").write_bytes(big_opml(25_000))  # about 2.2 MB
    assert run_cli("--config", str(path), "sources", "import", str(tmp_path / "huge.opml")) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("huge.opml: larger than 2 MB; not a subscription list (split it)") and "\n" not in err
    assert path.read_bytes() == before
    with pytest.raises(OpmlError, match="larger than 2 MB"):
        parse_opml(big_opml(25_000))


def test_a_large_export_is_read_as_a_stream_and_imported_in_one_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "big.opml").write_bytes(big_opml(3_000))
    document = read_opml(tmp_path / "big.opml")
    assert len(document.feeds) == 3_000 and document.title == "big"
    assert document.feeds[2_999] == OpmlFeed(
        "https://site2999.example.org/feed.xml", "Site 2999", "", ("Folder 59",), 2 + 1 + 59 * 2 + 3_000
    )
    path = write_config(tmp_path)
    assert run_cli("--config", str(path), "sources", "import", str(tmp_path / "big.opml")) == 0
    assert capsys.readouterr().out.strip().startswith("added 3000")
    assert len(config.load(path).sources) >= 3_000


def test_import_check_skips_dead_feeds_saying_why(
    tmp_path: Path, http_server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.route("/alive.xml", Response((FIX / "feeds" / "rss20.xml").read_bytes()))
    http_server.route("/gone.xml", Response(b"", status=410))
    http_server.route("/page.html", Response(b"<html><body>hello</body></html>", headers={"Content-Type": "text/html"}))
    opml = tmp_path / "list.opml"
    opml.write_bytes(
        render_opml(
            [OpmlGroup("x", [OpmlFeed(http_server.url(p)) for p in ("/alive.xml", "/gone.xml", "/page.html")])],
            title="t",
            now=NOW,
        )
    )
    path = write_config(tmp_path)

    assert run_cli("--config", str(path), "sources", "import", str(opml), "--check") == 0

    captured = capsys.readouterr()
    assert captured.out.strip() == "added 1, skipped 2 (2 dead)"
    assert "HTTP 410" in captured.err and "got a web page, not a feed" in captured.err
    assert config.load(path).sources[-1] == config.FeedSource(
        feed=http_server.url("/alive.xml"), name="Health IT Weekly"
    )


# -- export ---------------------------------------------------------------------------------------

EXPORT_CONFIG = """\
[digest]
title = "Health IT weekly"

[collect]
servers = ["mastodon.social", "hachyderm.io"]

[bluesky]
handle = "me.bsky.social"
app_password = "${TEST_BSKY_PASSWORD}"

[[sources]]
feed = "https://blog.hl7.org/rss.xml"
name = "HL7 blog"

[[sources]]
feed = "https://www.statnews.com/feed/"

[[sources]]
mastodon = "@alice@social.example"
name = "Alice"

[[sources]]
hashtag = "HITsm"

[[sources]]
hashtag = "FHIR"
servers = ["social.example"]
networks = ["mastodon", "bluesky"]

[[sources]]
bluesky = "jay.bsky.team"
"""


def test_export_writes_opml_grouped_by_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_BSKY_PASSWORD", "x")
    path = write_config(tmp_path, EXPORT_CONFIG)
    out = tmp_path / "sources.opml"

    assert run_cli("--config", str(path), "sources", "export", str(out)) == 0

    assert "wrote 7 feeds" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<opml version=\"2.0\">")
    document = read_opml(out)
    assert document.title == "Health IT weekly: sources"
    assert [(f.folders, f.url, f.title) for f in document.feeds] == [
        (("Feeds",), "https://blog.hl7.org/rss.xml", "HL7 blog"),
        (("Feeds",), "https://www.statnews.com/feed/", "https://www.statnews.com/feed/"),
        (("Mastodon accounts",), "https://social.example/@alice.rss", "Alice"),
        (("Hashtags",), "https://mastodon.social/tags/HITsm.rss", "#HITsm on mastodon.social"),
        (("Hashtags",), "https://hachyderm.io/tags/HITsm.rss", "#HITsm on hachyderm.io"),
        (("Hashtags",), "https://social.example/tags/FHIR.rss", "#FHIR on social.example"),
        (("Bluesky accounts",), "https://bsky.app/profile/jay.bsky.team/rss", "jay.bsky.team"),
    ]

    # the export imports back as the same subscriptions: nothing new here ...
    assert import_opml(config.load(path), out, now=NOW).added == []
    # ... and the same sources into an empty file
    empty = tmp_path / "empty" / "feeds.toml"
    empty.parent.mkdir()
    empty.write_text("# nothing yet\n", encoding="utf-8")
    import_opml(config.load(empty), out, now=NOW)
    assert config.load(empty).sources == (
        config.FeedSource(feed="https://blog.hl7.org/rss.xml", name="HL7 blog"),
        config.FeedSource(feed="https://www.statnews.com/feed/"),
        config.MastodonSource(mastodon="@alice@social.example", name="Alice"),
        config.HashtagSource(hashtag="HITsm", servers=("mastodon.social", "hachyderm.io")),
        config.HashtagSource(hashtag="FHIR", servers=("social.example",)),
        config.BlueskySource(bluesky="jay.bsky.team"),
    )


def test_export_says_what_has_no_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_BSKY_PASSWORD", "x")
    report = export_opml(config.load(write_config(tmp_path, EXPORT_CONFIG)), tmp_path / "out.opml", now=NOW)
    assert report.left_out == ["#FHIR on Bluesky (a search, with no feed)"]

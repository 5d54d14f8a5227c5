"""Bytes to posts: every feed format fills the one Post shape (a table of cases over tests/fixtures/feeds)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import NOW

from digest.collect.parse import parse_feed
from digest.errors import PermanentFetchError

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"
FEED_URL = "https://feeds.example/feed"


def parse(name: str, content_type: str = ""):
    return parse_feed((FEEDS / name).read_bytes(), FEED_URL, "feed:test", content_type, NOW)


# file, posts, feed title, first post's (url, title start, author name, published or None for "no date")
CASES = [
    (
        "rss091.xml",
        3,
        "Clinic Systems Notes",
        "https://clinicnotes.example/2026/11/ehr-upgrade-weekend.html",
        "Our EHR upgrade",
        None,
    ),
    (
        "rss092.xml",
        3,
        "Rural Telehealth Digest",
        "https://ruraltelehealth.example/news/broadband-grants-2026",
        "Broadband grants",
        None,
    ),
    (
        "rss10.rdf",
        3,
        "Interop Lab Journal",
        "https://interop-lab.example/2026/11/17/adt-to-fhir",
        "Mapping ADT",
        datetime(2026, 11, 17, 16, 20, tzinfo=UTC),
    ),
    (
        "rss20.xml",
        4,
        "Health IT Weekly",
        "https://hitweekly.example/2026/11/20/fhir-r6-ballot/",
        "FHIR R6 ballot",
        datetime(2026, 11, 20, 14, 30, tzinfo=UTC),
    ),
    (
        "atom03.xml",
        2,
        "Nursing Informatics Log",
        "https://nursinginformatics.example/2026/11/sepsis-alerts",
        "Cutting sepsis",
        datetime(2026, 11, 19, 22, 0, tzinfo=UTC),
    ),
    (
        "atom10.xml",
        3,
        "Digital Health Engineering",
        "https://digitalhealth.example/blog/posts/bulk-fhir-export",
        "Bulk FHIR export",
        datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
    ),
    (
        "jsonfeed10.json",
        3,
        "Patient Access API Watch",
        "https://patientaccess.example/2026/11/19/app-registration-times",
        "How long",
        datetime(2026, 11, 19, 20, 0, tzinfo=UTC),
    ),
    (
        "jsonfeed11.json",
        3,
        "Clinical Decision Support Notes",
        "https://cdsnotes.example/posts/cds-hooks-2",
        "CDS Hooks 2.0",
        datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
    ),
    (
        "latin1.xml",
        2,
        "Santé numérique - Revue",
        "https://sante-numerique.example/2026/11/dmp-fhir",
        "Le dossier médical",
        datetime(2026, 11, 17, 6, 45, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(("name", "count", "title", "url", "headline", "published"), CASES, ids=[c[0] for c in CASES])
def test_every_format_gives_posts(
    name: str, count: int, title: str, url: str, headline: str, published: datetime | None
) -> None:
    feed = parse(name)
    assert feed.title == title
    assert len(feed.posts) == count
    first = feed.posts[0]
    assert first.url == url
    assert (first.title or first.text).startswith(headline)
    assert first.published == (published or NOW)  # no date in the feed: first seen now
    assert first.published.tzinfo is not None
    assert first.text and first.source == "feed:test"
    assert len({p.id for p in feed.posts}) == count  # ids are distinct


def test_rss20_details() -> None:
    posts = parse("rss20.xml").posts
    ballot, telehealth, podcast, lunch = posts
    assert ballot.author.name == "Jordan Lee"  # from "editor@... (Jordan Lee)"
    assert ballot.tags == ("FHIR", "Standards")
    assert "https://hitweekly.example/2026/10/02/fhir-r5-one-year-on/" in ballot.links  # relative link made absolute
    assert [m.alt for m in ballot.media] == ["Timeline of the FHIR R6 ballot from November 2026 to mid 2027"]
    assert "utm_source" not in telehealth.links[0]  # tracking parameters dropped from the canonical link
    assert podcast.media[0].type == "audio"
    assert lunch.author.name == "Sam Okafor" and lunch.media[0].alt == "A table of tacos and salsa bowls"


def test_item_without_guid_is_identified_by_its_link() -> None:
    post = parse("rss092.xml").posts[0]
    assert post.uri == "https://ruraltelehealth.example/news/broadband-grants-2026"


def test_atom_xml_base_and_updated_only() -> None:
    first, second, third = parse("atom10.xml").posts
    assert "https://digitalhealth.example/blog/posts/ndjson-tips" in first.links
    assert first.media[0].url == "https://digitalhealth.example/images/export-graph.png"
    assert second.published == datetime(2026, 11, 17, 15, 30, tzinfo=UTC)  # updated, no published
    assert second.author.name == "Ben Carter"
    assert third.url == "https://digitalhealth.example/life/autumn-flowers"


def test_json_feed_fields() -> None:
    first, episode, _ = parse("jsonfeed10.json").posts
    assert first.author.name == "Rosa Delgado"
    assert "FHIR" in first.tags
    assert any(m.type == "audio" for m in episode.media)
    cds = parse("jsonfeed11.json").posts[1]
    assert cds.language == "de"


def test_windows_1252_without_declaration_uses_the_http_charset() -> None:
    feed = parse("cp1252_no_decl.xml", "application/rss+xml; charset=windows-1252")
    assert feed.title == "Payer–Provider Interop Blog"
    assert "€2.3M" in feed.posts[0].title
    assert feed.posts[1].title.startswith("“Why is my ePA")


def test_latin1_text_is_decoded() -> None:
    post = parse("latin1.xml").posts[1]
    assert "Ärztinnen" in post.text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("malformed.xml", "not a feed"),
        ("not_a_feed.html", "got a web page, not a feed"),
    ],
)
def test_not_a_feed_is_a_clear_error(name: str, message: str) -> None:
    with pytest.raises(PermanentFetchError, match=message):
        parse(name)


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"{}", b'{"version": "https://jsonfeed.org/version/1.1"}', b"{not json", b"\x00\xff\xfe"]
)
def test_junk_is_an_error_not_a_crash(body: bytes) -> None:
    with pytest.raises(PermanentFetchError):
        parse_feed(body, FEED_URL, "feed:test", "", NOW)

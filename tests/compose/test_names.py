"""Names a reader recognises on cards: a feed's publication name (feeds.toml's ``name``, else the
feed's own title as collected) instead of the host of its links, and one name per author however
many sources carried their posts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

from helpers import LAST_SEND, NOW, make_post, settings_from
from httpserver import Response, TestServer
from pytest import MonkeyPatch
from web.test_feedback_web import feedback_link
from webclient import CONFIG, SECRET, make_site

from compose.test_compose import SETTINGS
from digest.collect import collect
from digest.compose import Composer, Names
from digest.models import Author, Recipient
from digest.periods import last_completed
from digest.pipeline import composer_for, send_week
from digest.store import Store


def rss(title: str, link: str, items: list[tuple[str, str]]) -> bytes:
    """An RSS 2.0 feed titled ``title`` whose items (url, text) were published the day before the last send."""
    when = format_datetime(LAST_SEND - timedelta(days=1))
    body = "".join(
        f"<item><guid>{url}</guid><link>{url}</link><title>{text}</title><pubDate>{when}</pubDate>"
        f"<description>{text}</description></item>"
        for url, text in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title><link>{link}</link>{body}</channel></rss>'
    ).encode()


def test_cards_name_the_publication_from_feeds_toml_or_the_feeds_title(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route(
        "/stat.xml",
        Response(
            rss("STAT", "https://statnews.example/", [("https://statnews.example/1", "EHR vendors and FHIR APIs")])
        ),
    )
    http_server.route(
        "/interop.xml",
        Response(
            rss("interop lab feed", "https://interop.example/", [("https://interop.example/2", "TEFCA and the HIE")])
        ),
    )
    http_server.route(
        "/untitled.xml",
        Response(rss("", "https://plain.example/", [("https://plain.example/3", "HL7 v2 to FHIR mapping notes")])),
    )
    settings = settings_from(
        tmp_path,
        f"""
[[sources]]
feed = "{http_server.url("/stat.xml")}"

[[sources]]
feed = "{http_server.url("/interop.xml")}"
name = "Interop Weekly"

[[sources]]
feed = "{http_server.url("/untitled.xml")}"

[[topics]]
name = "Interoperability"
description = "Exchanging health data: FHIR, HL7, TEFCA, HIEs and EHR APIs."
keywords = ["FHIR", "HL7", "TEFCA", "HIE", "EHR"]
""",
    )
    with Store.open(settings.database_url) as store:
        collect(settings, store, now=NOW)
        collect(settings, store, now=NOW)  # the same bodies again: not parsed, the titles stay
        composer = composer_for(settings, store, now=NOW, period=last_completed(settings, NOW))
    edition = composer.edition(["Interoperability"])
    assert edition is not None
    # a feed with no author of its own: the publication is the author, named once
    lines = sorted(line for line in edition.text.splitlines() if line.startswith("* "))
    assert lines == [
        "* Interop Weekly · Thu 19 Nov, 07:00",  # feeds.toml's name wins over the feed's title
        "* STAT · Thu 19 Nov, 07:00",  # the feed's own title, kept from the first collection
        "* plain.example · Thu 19 Nov, 07:00",  # neither: the host
    ]
    assert "interop lab feed" not in edition.text and "interop lab feed" not in edition.html
    assert ">STAT</" in edition.html


def test_one_author_under_one_name_across_sources() -> None:
    """A hashtag feed knows only the handle; the account's own feed gives the display name."""
    handle = "@fhirdev@demo.example"
    account = make_post(
        "https://demo.example/@fhirdev/1",
        text="FHIR R6 ballot is open",
        html="<p>FHIR R6 ballot is open</p>",
        source=f"mastodon:{handle}",
        author=Author("Sam Reyes", handle, "https://demo.example/@fhirdev"),
        published=LAST_SEND - timedelta(hours=5),
    )
    tagged = make_post(
        "https://demo.example/@fhirdev/2",
        text="A2: Bulk FHIR export that works at scale #HITsm",
        html="<p>A2: Bulk FHIR export that works at scale #HITsm</p>",
        source="hashtag:#HITsm@demo.example",
        author=Author("fhirdev", handle, "https://demo.example/@fhirdev"),
        published=LAST_SEND - timedelta(hours=4),
    )
    stranger = make_post(
        "https://demo.example/@kwame/3",
        text="FHIR subscriptions in R6",
        html="<p>FHIR subscriptions in R6</p>",
        source="hashtag:#HITsm@demo.example",
        author=Author("kwame", "@kwame@demo.example", "https://demo.example/@kwame"),
        published=LAST_SEND - timedelta(hours=3),
    )
    names = Names.of([tagged, account, stranger])
    assert names.author(tagged) == names.author(account) == "Sam Reyes"
    assert names.author(stranger) == "kwame"  # no better name known: the one given
    composer = Composer(
        [account, tagged, stranger],
        {p.id: {"FHIR": 0.5} for p in (account, tagged, stranger)},
        **{**SETTINGS, "topics": ["FHIR"]},  # type: ignore[arg-type]
    )
    edition = composer.edition(["FHIR"])
    assert edition is not None
    assert edition.text.count("Sam Reyes (@fhirdev@demo.example)") == 2
    assert "fhirdev (@fhirdev@demo.example)" not in edition.text


def test_the_left_out_and_feedback_pages_name_posts_as_the_edition_cards_do(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    feed = "https://interop.example/feed"
    site = make_site(tmp_path, CONFIG + f'\n[[sources]]\nfeed = "{feed}"\nname = "Interop Weekly"\n')
    posts = [  # (url, text, author): one on topic, so the week has an edition; two left out
        ("https://interop.example/1", "FHIR R6 ballot opens: what changes for implementers", Author("", "", "")),
        ("https://interop.example/2", "The dahlias in the garden are finally blooming", Author("", "", "")),
        ("https://interop.example/3", "Lunch today: tacos from the food truck, delicious", Author("Bo Lind", "", "")),
    ]
    for i, (url, text, author) in enumerate(posts):
        post = make_post(url, text=text, html=f"<p>{text}</p>", source=f"feed:{feed}", author=author)
        site.store.add_posts(f"feed:{feed}", [replace(post, published=LAST_SEND - timedelta(hours=3 + i))])
    site.store.add_subscriber(Recipient("ana@example.org", "Ana", None), NOW)
    try:
        report = send_week(site.settings, site.store, now=NOW, messenger=site.mail)  # type: ignore[arg-type]
        assert report.sent == ["ana@example.org"]
        page = site.client().get("/editions/2026-W47/left-out")
        [message] = site.mail.to("ana@example.org")
        feedback = site.client().get(feedback_link(message, "FHIR R6 ballot opens", "less"))
    finally:
        site.close()
    assert page.status_code == 200 and "dahlias" in page.text and "tacos" in page.text
    # a feed's post with no author of its own is the publication's, never the host of its link
    assert "<strong>Interop Weekly</strong>" in page.text and "interop.example</" not in page.text
    # an author of its own keeps their name, with the publication beside it as on a card
    assert "<strong>Bo Lind</strong>" in page.text and "· Interop Weekly ·" in page.text
    # and so does the page a card's "Not for me" link opens
    assert (
        feedback.status_code == 200 and "Interop Weekly · " in feedback.text and "interop.example" not in feedback.text
    )

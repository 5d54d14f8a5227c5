"""Readers' feedback end to end in-process (a real SQLite store, the app over httpx's ASGI transport): the
links on every card of a sent edition (and none in the archive), the GET that only shows, the POST with its
CSRF token, the next week's editions of two readers, undo, and what is left after an unsubscription."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import LAST_SEND, NOW, make_post
from webclient import PUBLIC, SECRET, Site, make_site

from digest.feedback import FeedbackLinks, read_link
from digest.models import Author, Post, Recipient
from digest.pipeline import send_week
from digest.tokens import TokenError

ANA, BEN = "ana@example.org", "ben@example.org"
WEEK = timedelta(days=7)
LINK = re.compile(rf"{re.escape(PUBLIC)}(/feedback/[A-Za-z0-9_.~-]+)")


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = make_site(tmp_path)
    yield made
    made.close()


def post(n: int, text: str, author: str, ends: object = LAST_SEND) -> Post:
    handle = f"@{author}@example.org"
    return make_post(
        f"https://posts.example/{n}",
        text=text,
        html=f"<p>{text}</p>",
        tags=tuple(tag for tag in ("FHIR", "EHR") if tag in text),
        author=Author(author.title(), handle, f"https://example.org/{handle}"),
        published=ends - timedelta(hours=3 + n),  # type: ignore[operator]
    )


FIRST = [
    ("FHIR R6 ballot opens: what changes for implementers", "hl7"),
    ("Mapping HL7 v2 ADT messages to FHIR Encounter resources", "mapper"),
    ("Our EHR upgrade weekend, hour by hour", "vendorbot"),
    ("Epic go-live lessons from a rural hospital EHR team", "rural"),
    ("Lunch today: tacos from the food truck, delicious", "foodie"),
]
SECOND = [
    ("FHIR subscriptions in R5: a worked example for implementers", "hl7"),
    ("Epic and Cerner EHR market share in rural hospitals", "rural"),  # by the account Ana turned down
    ("Our EHR vendor's release notes, annotated", "vendorbot"),
    ("Mapping HL7 v2 ORU results to FHIR Observation resources", "mapper"),  # the oldest: last unless raised
]


def send(site: Site, posts: list[tuple[str, str]], *, week: int) -> str:
    ends = LAST_SEND + week * WEEK
    site.store.add_posts(
        "feed:https://posts.example/feed", [post(10 * week + i, t, a, ends) for i, (t, a) in enumerate(posts)]
    )
    report = send_week(site.settings, site.store, now=NOW + week * WEEK, messenger=site.mail)  # type: ignore[arg-type]
    assert report.sent
    return report.week


def parts(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return html, text


def feedback_link(message: EmailMessage, title: str, kind: str) -> str:
    """The card's ``kind`` link ("Not for me: ..." in the text part) under the card whose text is ``title``."""
    _, text = parts(message)
    card = text[text.index(title) :]
    label = "Not for me: " if kind == "less" else "More like this: "
    match = LINK.match(card[card.index(label) + len(label) :].split()[0])
    assert match, card[:400]
    return match.group(1)


def readers(site: Site) -> None:
    for person in (Recipient(ANA, "Ana", None), Recipient(BEN, "Ben", None)):
        site.store.add_subscriber(person, NOW)


def test_every_card_of_a_sent_edition_has_both_links_signed_for_its_reader_and_the_archive_none(site: Site) -> None:
    readers(site)
    week = send(site, FIRST, week=0)
    [mail] = site.mail.to(ANA)
    html, text = parts(mail)
    cards = html.count('class="card"')
    assert cards >= 3 and html.count(">Not for me</a>") == cards and html.count(">More like this</a>") == cards
    assert text.count("Not for me: ") == text.count("More like this: ") == cards and "%%" not in html + text
    pressed = read_link(SECRET, feedback_link(mail, "Epic go-live lessons", "less").removeprefix("/feedback/"))
    assert pressed.address == ANA and pressed.kind == "less"
    [ben] = site.mail.to(BEN)
    assert feedback_link(ben, "Epic go-live lessons", "less") != feedback_link(mail, "Epic go-live lessons", "less")
    archive = site.client().get(f"/editions/{week}").text
    assert "/feedback/" not in archive and "Not for me" not in archive and "%%" not in archive


def test_the_link_only_shows_the_button_posts_and_the_next_week_differs_per_reader(site: Site) -> None:
    readers(site)
    send(site, FIRST, week=0)
    [first] = site.mail.to(ANA)
    link = feedback_link(first, "Epic go-live lessons", "less")
    client = site.client()
    page = client.get(link)
    assert page.status_code == 200 and "Epic go-live lessons" in page.text and "Show me fewer like this" in page.text
    assert site.store.signals() == []  # a mail scanner opening the link records nothing
    assert client.post(link, data={"action": "press"}).status_code == 403  # no CSRF token: refused
    assert site.client("198.51.100.9").post(link, data={"csrf": "x", "action": "press"}).status_code == 403
    done = client.submit(page)
    assert done.status_code == 200 and "Undo" in done.text and "left out of yours" in done.text
    [signal] = site.store.signals()
    assert (signal.email, signal.kind, signal.topic) == (ANA, "less", "Health IT")
    again = client.get(link)
    assert "Undo" in again.text  # the page knows it was pressed
    assert client.submit(again, action="press").status_code == 200  # the same press again: still one signal
    assert len(site.store.signals()) == 1

    send(site, SECOND, week=1)
    ana, ben = parts(site.mail.to(ANA)[-1])[1], parts(site.mail.to(BEN)[-1])[1]
    assert "Epic and Cerner EHR market share" not in ana and "Epic and Cerner EHR market share" in ben
    assert "FHIR subscriptions in R5" in ana  # unlike posts stay


def test_more_like_this_puts_like_posts_first_and_undo_takes_it_back(site: Site) -> None:
    readers(site)
    send(site, FIRST, week=0)
    [first] = site.mail.to(ANA)
    link = feedback_link(first, "Mapping HL7 v2 ADT", "more")
    client = site.client()
    done = client.submit(client.get(link))
    assert "come first" in done.text and [s.kind for s in site.store.signals()] == ["more"]
    send(site, SECOND, week=1)
    for reader, raised in ((ANA, True), (BEN, False)):
        text = parts(site.mail.to(reader)[-1])[1]
        section = text[text.index("== Interoperability ==") :]
        assert (section.index("Mapping HL7 v2 ORU") < section.index("FHIR subscriptions in R5")) is raised, reader
    undone = client.submit(client.get(link))
    assert "Undone" in undone.text and site.store.signals() == []


def test_pressing_the_other_button_replaces_the_signal(site: Site) -> None:
    readers(site)
    send(site, FIRST, week=0)
    [first] = site.mail.to(ANA)
    client = site.client()
    client.submit(client.get(feedback_link(first, "Epic go-live lessons", "less")))
    client.submit(client.get(feedback_link(first, "Epic go-live lessons", "more")))
    assert [s.kind for s in site.store.signals()] == ["more"]


def test_forged_altered_and_foreign_links_are_refused(site: Site) -> None:
    readers(site)
    send(site, FIRST, week=0)
    [first] = site.mail.to(ANA)
    link = feedback_link(first, "Epic go-live lessons", "less")
    client = site.client()
    for bad in (
        link.replace("~less~", "~more~"),  # the purpose changed: the signature no longer matches
        link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"),
        "/feedback/nothing-like-a-token",
        "/feedback/" + "x" * 500,
    ):
        answer = client.get(bad)
        assert answer.status_code == 400 and "This link does not work" in answer.text, bad
    other = FeedbackLinks.for_reader(PUBLIC, "another-secret-0123456789-abcdefghij", ANA)
    assert client.get(other.url("less", "0" * 16, "0" * 8).removeprefix(PUBLIC)).status_code == 400
    body = link.removeprefix("/feedback/")
    with pytest.raises(TokenError):  # another reader's token in front of this link's signature
        read_link(SECRET, ("A" if body[0] != "A" else "B") + body[1:])


def test_an_unsubscribed_readers_signals_stay_only_as_anonymous_counts(site: Site) -> None:
    readers(site)
    send(site, FIRST, week=0)
    [first] = site.mail.to(ANA)
    link = feedback_link(first, "Epic go-live lessons", "less")
    client = site.client()
    client.submit(client.get(link))
    site.store.unsubscribe(ANA, NOW)
    [signal] = site.store.signals()
    assert signal.email == "" and signal.kind == "less"  # counted, no longer anyone's
    assert site.store.signals(email=ANA) == []
    assert client.get(link).status_code == 404  # the link of someone no longer subscribed acts on nothing

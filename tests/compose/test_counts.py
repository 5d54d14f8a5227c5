"""One count, defined once (`compose.Counts`), shown everywhere: the CLI, the HTML and text editions,
the left-out page and the demo agree, and every post read is counted exactly once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers import LAST_SEND, NOW, make_post, run_cli
from webclient import SECRET, Site, make_site

from digest.demo import run_demo
from digest.models import Author, Recipient
from digest.pipeline import send_week

ANA = "ana@example.org"
BLOG = Author("Bo", "", "https://blog.example/")
# (text, source, url): the tacos post and the ADT write-up come through two feeds each, as two
# posts with their own URLs; a reader sees each once, and so must every count
POSTS = [
    ("FHIR R6 ballot opens: what changes for implementers", "feed:https://a.example/feed", "https://a.example/1"),
    ("Mapping HL7 v2 ADT messages to FHIR Encounter resources", "feed:https://a.example/feed", "https://a.example/2"),
    ("Mapping HL7 v2 ADT messages to FHIR Encounter resources", "feed:https://b.example/feed", "https://b.example/2"),
    ("Our EHR upgrade weekend, hour by hour", "feed:https://b.example/feed", "https://b.example/3"),
    ("Epic go-live lessons from a rural hospital EHR team", "feed:https://c.example/feed", "https://c.example/4"),
    ("Lunch today: tacos from the food truck, delicious", "feed:https://a.example/feed", "https://a.example/5"),
    ("Lunch today: tacos from the food truck, delicious", "feed:https://c.example/feed", "https://c.example/5"),
    ("The dahlias in the garden are finally blooming", "feed:https://c.example/feed", "https://c.example/6"),
]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    made = make_site(tmp_path)
    for i, (text, source, url) in enumerate(POSTS):
        post = make_post(
            url,
            text=text,
            html=f"<p>{text}</p>",
            source=source,
            author=BLOG,
            published=LAST_SEND - timedelta(hours=3 + i),
        )
        made.store.add_posts(source, [post])
    made.store.add_subscriber(Recipient(ANA, "Ana", None), NOW)
    yield made
    made.close()


def test_the_cli_both_editions_and_the_left_out_page_show_the_same_numbers(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    report = send_week(site.settings, site.store, now=NOW, messenger=site.mail)  # type: ignore[arg-type]
    assert report.week == "2026-W47" and report.sent == [ANA]
    [message] = site.mail.to(ANA)
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"^6 posts read from 3 sources: (\d+) on topic, (\d+) off-topic left out\.$", text, re.M)
    assert found, text  # 8 posts, two of them seen through a second feed
    summary, on_topic, left_out = found.group(0), int(found.group(1)), int(found.group(2))
    assert on_topic + left_out == 6 and left_out >= 2  # the tacos and the dahlias at least
    for part in (text, html):
        assert summary in part
        assert f"{left_out} off-topic posts were left out this week" in part
    assert text.count("Mapping HL7 v2 ADT") == 1  # one card for the post seen through two feeds
    notes = re.findall(r"^(\d+) posts? this week$|^The top \d+ of (\d+) posts this week$", text, re.M)
    assert sum(int(a or b) for a, b in notes) == on_topic  # the sections add up to the header's count

    left = site.client().get("/editions/2026-W47/left-out")
    assert left.status_code == 200 and f"judged these {left_out} posts off-topic" in left.text
    assert left.text.count("tacos from the food truck") == 1 and "dahlias" in left.text

    assert run_cli("--config", str(site.settings.path), "preview", "--week", "2026-W47", "--text") == 0
    shown = capsys.readouterr()
    assert f"2026-W47: {summary}" in shown.err.splitlines() and summary in shown.out


def test_the_demo_prints_the_numbers_its_edition_shows(tmp_path: Path) -> None:
    result = run_demo(tmp_path, now=NOW, say=lambda line: None)
    counts = result.counts
    assert counts.read == sum(counts.on_topic.values()) + counts.other_topics + counts.in_chats + counts.left_out
    assert len(result.dropped) == counts.left_out
    edition = (result.outbox / "you@example.org.eml").read_text(encoding="utf-8")
    assert counts.summary in edition.replace("=\n", "")  # the text part, however the line is wrapped
    for topic, n in counts.on_topic.items():
        shown = len(result.kept[topic])
        note = f"The top {shown} of {n} posts" if shown < n else f"{n} posts?"
        assert re.search(rf"== {re.escape(topic)} ==\n{note} this week", edition), topic
    assert sum(map(len, result.kept.values())) < sum(counts.on_topic.values())  # a section is cut: the case here


def test_the_demo_lists_each_sections_posts_as_its_edition_shows_them(tmp_path: Path) -> None:
    """What the terminal lists under a topic is that section of the edition: its posts, in its order, under
    the names its cards give (not the handles)."""
    result = run_demo(tmp_path, now=NOW, say=lambda line: None)
    [sent] = result.outbox.glob("*.eml")
    message = message_from_bytes(sent.read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    for topic, lines in result.kept.items():
        section = text.split(f"\n== {topic} ==\n", 1)[1].split("\n== ", 1)[0]
        authors = re.findall(r"^\* (.+?)(?: \(@[^)]*\))? · ", section, re.M)
        assert [line.split(": ", 1)[0] for line in lines] == authors, topic
        where = [section.index(line.split(": ", 1)[1][:20]) for line in lines]
        assert where == sorted(where), topic
    listed = [line for lines in result.kept.values() for line in lines] + result.dropped
    assert not any(line.startswith("@") for line in listed)

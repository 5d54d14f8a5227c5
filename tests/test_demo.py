"""`digest demo`: the real pipeline over the bundled sample week, served on 127.0.0.1, and the edition
it mails as golden files (``golden/demo_edition.*``): its chat recap, publication and author names and
counts that agree. Regenerate only on purpose: ``DIGEST_REGEN_GOLDEN=1 python -m pytest tests/test_demo.py``.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from compose.test_compose import GOLDEN, REGEN, scrub
from helpers import NOW, run_cli

from digest.demo import DemoResult, run_demo, sample_feeds


def test_sample_feeds_are_dated_relative_to_now() -> None:
    feeds = sample_feeds(NOW)
    assert {"/@nina.rss", "/tags/HITsm.rss", "/blog/feed.xml"} <= set(feeds)
    assert b"Sat, 21 Nov 2026" in feeds["/@fhirdev.rss"]  # six hours before NOW


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path, now=NOW, say=lines.append)
    assert result.new_posts == 23
    kept = {line for lines_ in result.kept.values() for line in lines_}
    assert any("FHIR R6 ballot" in line for line in kept)
    assert any("TEFCA one year in" in line for line in kept)
    dropped = " ".join(result.dropped)
    for noise in ("samosas", "puppy", "tulips", "game tonight", "coffee and a donut", "kayaking"):
        assert noise in dropped
    assert result.preview.read_text(encoding="utf-8").count("<html") == 1
    emails = list(result.outbox.glob("*.eml"))
    assert [p.name for p in emails] == ["you@example.org.eml"]
    message = message_from_bytes(emails[0].read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    assert "FHIR" in text
    # the chat recap: the host's two questions (T1 after a welcome), answers by label and by time
    recap = text[text.index("== Chat recap: #HITsm ==") :]
    t1, t2 = recap.index("T1: which telehealth visit types"), recap.index("T2: what is the one FHIR API")
    assert all(t1 < recap.index(a) < t2 for a in ("A1: audio-only follow-ups", "A1 Behavioral health by video"))
    assert all(t2 < recap.index(a) for a in ("A2: Bulk FHIR export", "A2 Patient access API", "CDS Hooks, so"))
    assert "coffee and a donut" not in recap
    assert result.counts.in_chats == 7
    assert lines[0].startswith("1. serving a sample week on http://127.0.0.1:")


def test_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("demo", "--no-open", "--dir", str(tmp_path / "demo")) == 0
    out = capsys.readouterr().out
    assert "left out as off-topic" in out and "the edition:" in out
    assert (
        "\nkept under Interoperability (6; the edition shows the top 5):\n  + Sam Reyes: FHIR R6 ballot is open." in out
    )
    assert "in the chat recap (7):\n  #HITsm: 2 questions, 6 participants\n  T1: which telehealth visit types" in out
    assert (
        "(2 answers)\n  T2: what is the one FHIR API your organization wishes every EHR vendor supported today? (3 answers)\n"
        in out
    )
    assert (tmp_path / "demo" / "feeds.toml").exists()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, EmailMessage]:
    result = run_demo(tmp_path_factory.mktemp("demo"), now=NOW, say=lambda _: None)
    (sent,) = result.outbox.glob("*.eml")
    message = message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return result, message


@pytest.mark.parametrize("name", ["demo_edition.txt", "demo_edition.html"])
def test_golden_demo_edition(demo_run: tuple[DemoResult, EmailMessage], name: str) -> None:
    """The edition the demo mails: both chat questions with their answers, names, one set of numbers."""
    _, message = demo_run
    part = message.get_body(("plain",) if name.endswith(".txt") else ("html",))
    assert part is not None
    actual = scrub(part.get_content())
    path = GOLDEN / name
    if REGEN:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing; create it with DIGEST_REGEN_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{name} changed; review, then DIGEST_REGEN_GOLDEN=1"


def test_the_demo_edition_names_publications_and_authors_and_its_numbers_agree(
    demo_run: tuple[DemoResult, EmailMessage],
) -> None:
    result, message = demo_run
    text = scrub(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    counts = result.counts
    assert counts.summary in text and f"{counts.left_out} off-topic posts were left out this week" in text
    assert counts.read == result.new_posts == 23
    assert sum(counts.on_topic.values()) + counts.other_topics + counts.in_chats + counts.left_out == counts.read
    sections = re.findall(r"^(?:(\d+) posts? this week|The top \d+ of (\d+) posts this week)$", text, re.M)
    assert sum(int(a or b) for a, b in sections) == sum(counts.on_topic.values())
    recap = text[text.index("== Chat recap: #HITsm ==") :]
    answers = recap.count("\n  - ")
    questions = len(re.findall(r"^T\d: ", recap, re.M))
    assert questions == 2 and "· 2 questions" in recap and answers + questions == counts.in_chats
    # the blog's cards name the publication, not the host of its links; one name per author
    assert "Priya Raman · Wed 18 Nov, 19:00 · Interop Lab Journal" in text and "· interop.example" not in text
    assert "Sam Reyes (@fhirdev@demo.example)" in recap and "fhirdev (@fhirdev@demo.example)" not in text

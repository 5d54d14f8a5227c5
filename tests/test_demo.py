"""`digest demo`: the real pipeline over the bundled sample week, served on 127.0.0.1."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers import NOW, run_cli

from digest.demo import run_demo, sample_feeds


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
    assert (tmp_path / "demo" / "feeds.toml").exists()

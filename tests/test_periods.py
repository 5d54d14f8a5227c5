"""Editions are contiguous periods: every post in exactly one, whatever day a command runs on.

The clock is `helpers.NOW` (Saturday 21 November 2026, 12:00 UTC); the default ``send_on`` is
Friday 07:00, so the last completed edition is 2026-W47 (Fri 13 Nov 07:00 to Fri 20 Nov 07:00) and
2026-W48 is in progress.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import LAST_SEND, NOW, ONE_TOPIC, make_post, run_cli, settings_from

from digest.errors import UsageError
from digest.periods import edition_for, in_progress, last_completed, parse_week
from digest.store import Store

TOPICS = ONE_TOPIC


@pytest.mark.parametrize(
    ("timezone", "send_on"),
    [("UTC", "friday 07:00"), ("America/New_York", "sunday 01:30"), ("Europe/Berlin", "monday 00:00")],
)
def test_consecutive_editions_share_their_boundaries_so_every_moment_is_in_exactly_one(
    tmp_path: Path, timezone: str, send_on: str
) -> None:
    """Across two summer-time changes (25 Oct in Europe, 1 Nov in America) and a year's end."""
    settings = settings_from(tmp_path, f'[digest]\ntimezone = "{timezone}"\nsend_on = "{send_on}"\n')
    start = datetime(2026, 10, 1, tzinfo=UTC)
    editions = []
    now = start
    while now < datetime(2027, 1, 20, tzinfo=UTC):
        period = last_completed(settings, now)
        if not editions or editions[-1] != period:
            editions.append(period)
        now += timedelta(hours=7)
    for before, after in itertools.pairwise(editions):
        assert before.until == after.since, (before, after)  # no gap, no overlap
        assert before.complete and before.since < before.until
    weeks = [p.week for p in editions]
    assert len(weeks) == len(set(weeks)) and "2026-W53" in weeks  # one edition per ISO week
    moment = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # in the hour America/New_York repeats
    assert sum(p.since <= moment < p.until for p in editions) == 1


def test_the_edition_in_progress_starts_where_the_last_completed_one_ends(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "")
    last, current = last_completed(settings, NOW), in_progress(settings, NOW)
    assert (last.week, last.since, last.until) == ("2026-W47", LAST_SEND - timedelta(days=7), LAST_SEND)
    assert (current.week, current.since, current.until) == ("2026-W48", LAST_SEND, NOW)
    assert current.due == LAST_SEND + timedelta(days=7) and not current.complete
    at_send = last_completed(settings, LAST_SEND)
    assert at_send.week == "2026-W47"  # the send time itself completes the edition
    assert last_completed(settings, LAST_SEND - timedelta(seconds=1)).week == "2026-W46"


def test_a_named_week_is_resolved_or_refused(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "")
    assert edition_for(settings, "2026-W45", NOW, complete=True).until == LAST_SEND - timedelta(days=14)
    assert edition_for(settings, "2026-w48", NOW, complete=False).until == NOW  # in progress: so far
    with pytest.raises(UsageError, match="not complete until Fri 27 Nov 2026 07:00 UTC"):
        edition_for(settings, "2026-W48", NOW, complete=True)
    with pytest.raises(UsageError, match="has not begun"):
        edition_for(settings, "2026-W49", NOW, complete=False)
    for bad in ("2026-47", "2026-W54", "next week"):
        with pytest.raises(UsageError, match="not an ISO week such as 2026-W47"):
            parse_week(bad)


def _site(tmp_path: Path) -> Path:
    settings = settings_from(tmp_path, TOPICS)
    with Store.open(settings.database_url) as store:
        store.add_posts(
            "feed:x",
            [
                make_post(
                    "https://p.example/done", text="FHIR R6 ballot opens", published=LAST_SEND - timedelta(hours=5)
                ),
                make_post("https://p.example/new", text="HL7 v2 mapping notes", published=NOW - timedelta(hours=1)),
            ],
        )
    return settings.path


def test_send_on_a_saturday_sends_the_completed_edition_and_refuses_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_site(tmp_path))
    assert run_cli("--config", config, "send", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["week"] == "2026-W47" and report["sent"] == 1
    assert report["period"] == {"since": "2026-11-13T07:00:00+00:00", "until": "2026-11-20T07:00:00+00:00"}
    assert report["next_due"] == "2026-11-27T07:00:00+00:00"
    sent = (tmp_path / "outbox" / "2026-W47" / "ana@example.org.eml").read_text(encoding="utf-8")
    assert "FHIR R6 ballot" in sent and "HL7 v2 mapping" not in sent  # Saturday's post waits for W48
    assert run_cli("--config", config, "send") == 0  # again: nothing burned, nothing twice
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "2026-W47: the edition of Fri 13 Nov 2026 07:00 UTC to Fri 20 Nov 2026 07:00 UTC; "
        "the next is due Fri 27 Nov 2026 07:00 UTC"
    )
    assert lines[1].startswith("2026-W47: sent 0, skipped 1 already sent")
    for week, why in (("2026-W48", "not complete until"), ("2027-W10", "has not begun"), ("W48", "not an ISO")):
        assert run_cli("--config", config, "send", "--week", week, "--dry-run") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --week {week if week != 'W48' else repr(week)}") and why in err, err


def test_preview_labels_the_edition_in_progress_as_its_own_week(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_site(tmp_path))
    assert run_cli("--config", config, "preview", "--text") == 0
    text = capsys.readouterr().out
    assert "20–21 November 2026" in text and "HL7 v2 mapping" in text and "FHIR R6 ballot" not in text
    assert run_cli("--config", config, "preview", "--text", "--week", "2026-W47") == 0
    text = capsys.readouterr().out
    assert "13–20 November 2026" in text and "FHIR R6 ballot" in text and "HL7 v2 mapping" not in text
    assert run_cli("--config", config, "preview", "--week", "2026-W50") == 2
    assert "has not begun" in capsys.readouterr().err

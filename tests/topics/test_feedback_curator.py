"""The curator's side of readers' feedback: `digest topics feedback` (and `--accept`), auto-accept after N
distinct readers (off by default, never one reader), `digest topics explain` naming the signals, the filter
learning from accepted examples, and `digest subscribers export` carrying a reader's own signals."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import NOW, make_post, run_cli, settings_from

from digest import curate
from digest.config import Settings
from digest.feedback import Signal
from digest.models import Author, Post, Recipient
from digest.pipeline import run_filter
from digest.store import Store

TOPICS = """
[[topics]]
name = "Interoperability"
description = "Exchanging health data between systems: HL7, FHIR, APIs."
keywords = ["FHIR", "HL7", "interoperability"]
{accept}
"""
READERS = ("ana@example.org", "ben@example.org", "cy@example.org")


def setup(tmp_path: Path, accept: str = "") -> tuple[Settings, Store, str]:
    settings = settings_from(tmp_path, TOPICS.format(accept=accept))
    store = Store.open(settings.database_url)
    for email in READERS:
        store.add_subscriber(Recipient(email, "", None), NOW)
    post = make_post(
        "https://posts.example/sourdough",
        text="Sourdough starter tips: feed it twice a day",
        author=Author("Baker", "@baker@example.org", "https://example.org/@baker"),
        published=NOW - timedelta(hours=2),
    )
    store.add_posts("feed:https://posts.example/feed", [post])
    return settings, store, post.id


def press(store: Store, email: str, post_id: str, kind: str, topic: str = "Interoperability") -> None:
    text = "Sourdough starter tips: feed it twice a day"
    store.record_signal(Signal(email, post_id, topic, kind, text, "@baker@example.org", NOW))


def test_one_reader_never_changes_a_topic_and_auto_accept_is_off_by_default(tmp_path: Path) -> None:
    settings, store, post_id = setup(tmp_path)
    for email in READERS:
        press(store, email, post_id, "more")
    assert curate.accept_agreed(settings, store, NOW) == 0 and store.examples() == []
    [row] = curate.feedback(settings, store)
    assert (row.post_id, row.more, row.less, row.accepted) == (post_id, 3, 0, None)


def test_auto_accept_after_n_distinct_readers_agree(tmp_path: Path) -> None:
    settings, store, post_id = setup(tmp_path, "accept_after = 2")
    press(store, READERS[0], post_id, "more")
    press(store, READERS[0], post_id, "more")  # the same reader twice is one reader
    run_filter(settings, store, now=NOW)
    assert store.examples() == []
    press(store, READERS[1], post_id, "more")
    run_filter(settings, store, now=NOW)  # the weekly job's filter step accepts, then fits with it
    [example] = store.examples()
    assert (example.post_id, example.label, example.origin) == (post_id, True, "readers")


def test_readers_who_disagree_are_not_accepted_automatically(tmp_path: Path) -> None:
    settings, store, post_id = setup(tmp_path, "accept_after = 2")
    press(store, READERS[0], post_id, "more")
    press(store, READERS[1], post_id, "more")
    press(store, READERS[2], post_id, "less")
    assert curate.accept_agreed(settings, store, NOW) == 0


def test_an_accepted_example_changes_the_next_filter_run(tmp_path: Path) -> None:
    settings, store, post_id = setup(tmp_path)
    with (Path(__file__).parents[1] / "fixtures" / "topics_small.csv").open(encoding="utf-8", newline="") as f:
        week = [row["text"] for row in csv.DictReader(f)]  # a week big enough for the model to learn from
    store.add_posts(
        "feed:https://posts.example/feed",
        [
            make_post(f"https://posts.example/{i}", text=t, html=f"<p>{t}</p>", published=NOW - timedelta(hours=3 + i))
            for i, t in enumerate(week)
        ],
    )
    before = run_filter(settings, store, now=NOW).decision(post_id)
    assert before is not None and before.topics == ()
    press(store, READERS[0], post_id, "more")
    assert curate.accept(settings, store, [post_id], NOW) == [(post_id, "Interoperability", True)]
    after = run_filter(settings, store, now=NOW).decision(post_id)
    assert after is not None and after.scores["Interoperability"] > before.scores["Interoperability"]


def test_topics_feedback_lists_accepts_and_explain_names_the_signals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, store, post_id = setup(tmp_path)
    press(store, READERS[0], post_id, "less")
    press(store, READERS[1], post_id, "less")
    store.close()
    config = str(settings.path)
    assert run_cli("--config", config, "topics", "feedback", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["post"] == post_id and row["not_for_me"] == 2 and row["accepted"] is None
    assert run_cli("--config", config, "topics", "feedback") == 0
    assert "Sourdough" in capsys.readouterr().out
    assert run_cli("--config", config, "topics", "feedback", "--accept", post_id, "--json") == 0
    captured = capsys.readouterr()
    assert f"accepted {post_id} as an example against Interoperability" in captured.err
    assert json.loads(captured.out)[0]["accepted"] is False
    assert run_cli("--config", config, "topics", "feedback", "--accept", "0000000000000000") == 1
    assert "no reader signalled this post" in capsys.readouterr().err
    assert run_cli("--config", config, "filter") == 0
    capsys.readouterr()
    assert run_cli("--config", config, "topics", "explain", post_id, "--json") == 0
    explained = json.loads(capsys.readouterr().out)
    readers = explained["readers"]
    assert readers["signals"] == [{"topic": "Interoperability", "not_for_me": 2, "more_like_this": 0}]
    assert readers["accepted"] == [{"topic": "Interoperability", "label": False, "origin": "curator"}]
    [moved] = explained["examples"]["Interoperability"]  # the post itself, accepted "not for me", voted on it
    assert moved["label"] is False and moved["similarity"] == 1.0 and moved["shift"] == -4.0
    assert run_cli("--config", config, "topics", "explain", post_id) == 0
    text = capsys.readouterr().out
    assert "2 not for me" in text
    assert "moved -4.00 by accepted example (not for me, similarity 1.00): Sourdough starter tips" in text


def test_a_split_post_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, store, post_id = setup(tmp_path)
    press(store, READERS[0], post_id, "less")
    press(store, READERS[1], post_id, "more")
    store.close()
    assert run_cli("--config", str(settings.path), "topics", "feedback", "--accept", post_id) == 1
    assert "1 readers asked for more and 1 for less" in capsys.readouterr().err


def test_export_carries_each_readers_own_signals_only(tmp_path: Path) -> None:
    settings, store, post_id = setup(tmp_path)
    press(store, READERS[0], post_id, "less")
    store.close()
    out = tmp_path / "readers.csv"
    assert run_cli("--config", str(settings.path), "subscribers", "export", str(out)) == 0
    rows = {r["email"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows[READERS[0]]["signals"] == f"less:{post_id}:Interoperability"
    assert rows[READERS[1]]["signals"] == ""


def test_likeness_is_the_post_the_account_or_close_words_and_not_for_me_wins() -> None:
    from digest.feedback import Likeness
    from digest.rank import account_key

    def by(n: int, text: str, who: str) -> Post:
        return make_post(f"https://p.example/{n}", text=text, author=Author(who, f"@{who}@x.org", ""))

    week = [
        by(1, "Crypto giveaway: claim your free tokens now", "spam"),
        by(2, "Free crypto tokens giveaway, claim now before it ends", "other"),  # close words, another account
        by(3, "A quiet FHIR release with two new resources", "spam"),  # the same account
        by(4, "HL7 working group meets in January", "hl7"),
    ]
    likeness = Likeness(week, account_key)
    less = Signal("a@x.org", week[0].id, "T", "less", week[0].document(), "@spam@x.org", NOW)
    more = Signal("a@x.org", "f" * 16, "T", "more", "HL7 working group meets", "", NOW)
    hide, boost = likeness.adjust([less, more])
    assert hide == {week[0].id, week[1].id, week[2].id}
    assert boost == {week[3].id}
    assert likeness.adjust([]) == (frozenset(), frozenset())


def test_signals_and_examples_on_sqlite_and_postgresql(store_url: str) -> None:
    """One signal per reader, post and topic whichever button is pressed how often; undo; accepting twice
    replaces the label; an unsubscription leaves anonymous signals that still count as readers."""
    from digest.feedback import tally

    with Store.open(store_url) as store:
        store.add_subscriber(Recipient(READERS[0], "", None), NOW)
        for kind in ("less", "less", "more"):
            press(store, READERS[0], "a" * 16, kind)
        press(store, READERS[1], "a" * 16, "more")
        assert sorted((s.email, s.kind) for s in store.signals(post_id="a" * 16)) == [
            (READERS[0], "more"),
            (READERS[1], "more"),
        ]
        assert store.undo_signal(READERS[1], "a" * 16, "Interoperability") is True
        assert store.undo_signal(READERS[1], "a" * 16, "Interoperability") is False
        store.accept_examples([("Interoperability", "a" * 16, "text", True)], "curator", NOW)
        store.accept_examples([("Interoperability", "a" * 16, "text", False)], "curator", NOW)
        assert [(e.post_id, e.label) for e in store.examples()] == [("a" * 16, False)]
        press(store, READERS[1], "a" * 16, "more")
        store.unsubscribe(READERS[0], NOW)
        assert sorted(s.email for s in store.signals()) == ["", READERS[1]]
        [tallied] = tally(store.signals(), {})
        assert (tallied.more, tallied.readers) == (2, 2)  # the anonymous signal still counts as a reader

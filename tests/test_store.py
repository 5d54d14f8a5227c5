"""The SQLite store: created on first use, migrated without loss, posts stored once."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import NOW, make_post

from digest.errors import StoreError
from digest.models import Engagement, Media, SourceState
from digest.store import SCHEMA_VERSION, Store


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'digest.db'}"


def test_created_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    with Store.open(url(tmp_path)) as store:
        assert store.version == SCHEMA_VERSION
        assert store.count_posts() == 0
    with sqlite3.connect(tmp_path / "digest.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"posts", "sources", "post_sources", "post_links", "schema_info"} <= tables


def test_post_round_trips_every_field(tmp_path: Path) -> None:
    post = make_post(
        tags=("FHIR", "HealthIT"),
        mentions=("@bob@example.org",),
        links=("https://hl7.org/fhir",),
        media=(Media("https://example.org/a.png", "image", "a chart"),),
        is_boost=True,
        boosted_by="@carol@example.org",
        content_warning="long",
        sensitive=True,
        language="en",
        engagement=Engagement(1, 2, 3, None),
        published=NOW - timedelta(hours=5),
    )
    with Store.open(url(tmp_path)) as store:
        assert store.add_posts("feed:x", [post]) == 1
        assert store.post(post.id) == post
        assert store.post(post.url) == post
        assert store.posts(since=NOW - timedelta(days=1)) == [post]
        assert store.posts(since=NOW) == []


def test_same_post_twice_is_stored_once_with_fresh_counts_and_both_sources(tmp_path: Path) -> None:
    first = make_post(engagement=Engagement(0, 1, 2))
    again = replace(first, source="hashtag:#FHIR@b.example", engagement=Engagement(5, 6, 7))
    with Store.open(url(tmp_path)) as store:
        assert store.add_posts("hashtag:#FHIR@a.example", [first, first]) == 1
        assert store.add_posts("hashtag:#FHIR@b.example", [again]) == 0
        assert store.add_posts("hashtag:#FHIR@b.example", [again]) == 0
        assert store.count_posts() == 1
        assert store.post(first.id).engagement == Engagement(5, 6, 7)
        assert store.sources_of(first.id) == ["hashtag:#FHIR@a.example", "hashtag:#FHIR@b.example"]


def test_shared_link_is_found_from_two_posts(tmp_path: Path) -> None:
    link = "https://hl7.org/fhir/r6"
    a = make_post("https://a.example/1", links=(link,))
    b = make_post("https://b.example/2", links=(link,))
    with Store.open(url(tmp_path)) as store:
        store.add_posts("feed:a", [a])
        store.add_posts("feed:b", [b])
        assert store.posts_linking(link) == sorted([a.id, b.id])


def test_source_state_saved_with_posts_and_reloaded(tmp_path: Path) -> None:
    state = SourceState("feed:x", "feed", "https://x.example/feed", status="ok", etag='"v1"', last_success=NOW)
    with Store.open(url(tmp_path)) as store:
        store.add_posts("feed:x", [make_post()], state)
        state.failures = 3
        store.save_source_state(state)
    with Store.open(url(tmp_path)) as store:
        saved = store.source_states()["feed:x"]
    assert saved.etag == '"v1"' and saved.failures == 3 and saved.last_success == NOW


def test_existing_file_keeps_its_data_when_reopened(tmp_path: Path) -> None:
    with Store.open(url(tmp_path)) as store:
        store.add_posts("feed:x", [make_post()])
    with Store.open(url(tmp_path)) as store:
        assert store.count_posts() == 1


def test_older_schema_is_migrated_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import digest.store as store_mod

    with Store.open(url(tmp_path)) as store:
        store.add_posts("feed:x", [make_post()])
    # A later version adds a column: the step runs once on the existing file and keeps its rows.
    monkeypatch.setattr(store_mod, "MIGRATIONS", {SCHEMA_VERSION + 1: ["ALTER TABLE posts ADD COLUMN extra TEXT"]})
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store.open(url(tmp_path)) as store:
        assert store.version == SCHEMA_VERSION + 1
        assert store.count_posts() == 1
    with sqlite3.connect(tmp_path / "digest.db") as raw:
        assert "extra" in {r[1] for r in raw.execute("PRAGMA table_info(posts)")}


def test_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    Store.open(url(tmp_path)).close()
    with sqlite3.connect(tmp_path / "digest.db") as raw:
        raw.execute("UPDATE schema_info SET version = 99")
    with pytest.raises(StoreError, match="newer digest"):
        Store.open(url(tmp_path))


def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "digest.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        Store.open(url(tmp_path))


def test_version_1_file_gains_the_filter_tables_and_keeps_its_posts(tmp_path: Path) -> None:
    with Store.open(url(tmp_path)) as store:
        store.add_posts("feed:x", [make_post()])
    with sqlite3.connect(tmp_path / "digest.db") as raw:  # make it look like a file from schema version 1
        raw.execute("DROP TABLE decisions")
        raw.execute("DROP TABLE filter_runs")
        raw.execute("UPDATE schema_info SET version = 1")
    with Store.open(url(tmp_path)) as store:
        assert store.version == SCHEMA_VERSION >= 2
        assert store.count_posts() == 1
        assert store.last_filter_run() is None


def test_filter_run_round_trips(tmp_path: Path) -> None:
    from digest.models import Decision

    post = make_post()
    kept = Decision(
        ("Interoperability",),
        {"Interoperability": 0.91, "Health IT": 0.4},
        {"Interoperability": 0.5, "Health IT": 0.5},
        0.09,
    )
    with Store.open(url(tmp_path)) as store:
        store.add_posts("feed:x", [post])
        store.save_filter_run(NOW, NOW - timedelta(days=7), NOW, ["Interoperability", "Health IT"], [(post.id, kept)])
        run = store.last_filter_run()
    assert run is not None and run.topics == ("Interoperability", "Health IT")
    assert run.verdicts == [(post.id, kept)] and run.decision(post.id) == kept
    assert run.since == NOW - timedelta(days=7) and run.decision("other") is None

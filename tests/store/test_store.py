"""The store, on SQLite and PostgreSQL (`store_url`): created on first use, migrated without loss, posts stored once."""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import NOW, make_post

from digest.errors import StoreError
from digest.models import Decision, Engagement, Media, SourceState
from digest.store import SCHEMA_VERSION, Store, display_url


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'digest.db'}"


def execute(store_url: str, *statements: str) -> None:
    """Run raw SQL on a database behind the store's back (to make it look older or newer)."""
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def columns(store_url: str, table: str) -> set[str]:
    engine = sa.create_engine(store_url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


# SQLite only: the file's journal mode.
def test_created_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    with Store.open(url(tmp_path)) as store:
        assert store.version == SCHEMA_VERSION
        assert store.count_posts() == 0
    with sqlite3.connect(tmp_path / "digest.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"posts", "sources", "post_sources", "post_links", "schema_info"} <= tables


def test_post_round_trips_every_field(store_url: str) -> None:
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
    with Store.open(store_url) as store:
        assert store.add_posts("feed:x", [post]) == 1
        assert store.post(post.id) == post
        assert store.post(post.url) == post
        assert store.posts(since=NOW - timedelta(days=1)) == [post]
        assert store.posts(since=NOW) == []


def test_same_post_twice_is_stored_once_with_fresh_counts_and_both_sources(store_url: str) -> None:
    first = make_post(engagement=Engagement(0, 1, 2))
    again = replace(first, source="hashtag:#FHIR@b.example", engagement=Engagement(5, 6, 7))
    with Store.open(store_url) as store:
        assert store.add_posts("hashtag:#FHIR@a.example", [first, first]) == 1
        assert store.add_posts("hashtag:#FHIR@b.example", [again]) == 0
        assert store.add_posts("hashtag:#FHIR@b.example", [again]) == 0
        assert store.count_posts() == 1
        assert store.post(first.id).engagement == Engagement(5, 6, 7)
        assert store.sources_of(first.id) == ["hashtag:#FHIR@a.example", "hashtag:#FHIR@b.example"]


def test_posts_another_store_wrote_first_count_only_there(store_url: str) -> None:
    posts = [make_post(f"https://news.example/p/{n}", engagement=Engagement(n, 0, 0)) for n in range(5)]
    with Store.open(store_url) as first, Store.open(store_url) as second:
        assert first.add_posts("feed:a", posts[:3]) == 3
        fresh = [replace(p, engagement=Engagement(9, 9, 9)) for p in posts]
        assert second.add_many([("feed:b", fresh, None), ("feed:a", fresh[:1], None)]) == [2, 0]
        assert first.count_posts() == 5 and second.sources_of(posts[0].id) == ["feed:a", "feed:b"]
        again = first.post(posts[0].id)
        assert again is not None and again.engagement == Engagement(9, 9, 9)


def test_documents_are_the_posts_documents_in_the_same_order_without_the_posts(store_url: str) -> None:
    """The filter reads `Store.documents` instead of `Post.document()` of every loaded post: the same
    text (title, body, hashtags, alt text; a missing alt, a title-less post) in the same order, window
    bounds included at ``since`` and excluded at ``until``."""
    posts = [
        make_post(
            f"https://news.example/d/{n}",
            published=NOW + timedelta(hours=n % 4, minutes=n),
            title="Ballot \u200bnews" if n % 2 else "",
            tags=("fhir", "hl7") if n % 3 else (),
            media=(Media("https://news.example/i.png", alt="a chart"), Media("https://news.example/j.png"))
            if n % 5 == 0
            else (),
        )
        for n in range(12)
    ]
    with Store.open(store_url) as store:
        store.add_posts("feed:a", posts)
        since, until = NOW + timedelta(hours=1), NOW + timedelta(hours=3, minutes=7)
        expected = [(p.id, p.document()) for p in store.posts(since, until)]
        assert store.documents(since, until) == expected
        assert 0 < len(expected) < len(posts)
        everything = store.documents()
        assert everything == [(p.id, p.document()) for p in store.posts()]
        assert any("a chart" in d for _, d in everything) and any("#fhir #hl7" in d for _, d in everything)


def test_shared_link_is_found_from_two_posts(store_url: str) -> None:
    link = "https://hl7.org/fhir/r6"
    a = make_post("https://a.example/1", links=(link,))
    b = make_post("https://b.example/2", links=(link,))
    with Store.open(store_url) as store:
        store.add_posts("feed:a", [a])
        store.add_posts("feed:b", [b])
        assert store.posts_linking(link) == sorted([a.id, b.id])


def test_source_state_saved_with_posts_and_reloaded(store_url: str) -> None:
    state = SourceState("feed:x", "feed", "https://x.example/feed", status="ok", etag='"v1"', last_success=NOW)
    with Store.open(store_url) as store:
        store.add_posts("feed:x", [make_post()], state)
        state.failures = 3
        store.save_source_state(state)
    with Store.open(store_url) as store:
        saved = store.source_states()["feed:x"]
    assert saved.etag == '"v1"' and saved.failures == 3 and saved.last_success == NOW


def test_existing_database_keeps_its_data_when_reopened(store_url: str) -> None:
    with Store.open(store_url) as store:
        store.add_posts("feed:x", [make_post()])
    with Store.open(store_url) as store:
        assert store.count_posts() == 1


def test_older_schema_is_migrated_in_place(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import digest.store as store_mod

    with Store.open(store_url) as store:
        store.add_posts("feed:x", [make_post()])
    # A later version adds a column: the step runs once on the existing file and keeps its rows.
    monkeypatch.setattr(store_mod, "MIGRATIONS", {SCHEMA_VERSION + 1: ["ALTER TABLE posts ADD COLUMN extra TEXT"]})
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store.open(store_url) as store:
        assert store.version == SCHEMA_VERSION + 1
        assert store.count_posts() == 1
    assert "extra" in columns(store_url, "posts")


def test_newer_schema_is_refused_with_advice(store_url: str) -> None:
    Store.open(store_url).close()
    execute(store_url, "UPDATE schema_info SET version = 99")
    with pytest.raises(StoreError, match="newer digest"):
        Store.open(store_url)


@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("postgresql+psycopg://digest:hunter2@127.0.0.1:{port}/digest", "OperationalError"),  # nothing listens
        ("postgresql+psycopg://digest:hunter2@127.0.0.1:port/digest", "not a SQLAlchemy database URL"),
        ("nosuch://digest:hunter2@127.0.0.1/digest", "Can't load plugin"),
    ],
)
def test_store_errors_never_show_the_password(database: str, reason: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError) as info:
        Store.open(database.format(port=port))
    assert "digest:***@127.0.0.1" in str(info.value) and "hunter2" not in str(info.value)
    assert f"cannot open the database: {reason}" in str(info.value)
    assert display_url(database) == database.replace("hunter2", "***")


# SQLite only: a file that is not a database.
def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "digest.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"file is not a database: .* restore it from a backup"):
        Store.open(url(tmp_path))


def test_version_1_database_gains_the_later_tables_and_keeps_its_posts(store_url: str) -> None:
    with Store.open(store_url) as store:
        store.add_posts("feed:x", [make_post()])
    execute(store_url, *VERSION_1)  # make it look like a database from schema version 1
    with Store.open(store_url) as store:
        assert store.version == SCHEMA_VERSION >= 2
        assert store.count_posts() == 1
        assert store.last_filter_run() is None
        assert store.subscribers() == [] and store.job("send", "2026-W47") is None
    assert "in_reply_to" in columns(store_url, "posts")
    assert {"owner", "lease_until"} <= columns(store_url, "sources")


# What a database of schema version 1 lacked: the tables and the column added since.
VERSION_1 = (
    "DROP TABLE decisions",
    "DROP TABLE filter_runs",
    "DROP TABLE deliveries",
    "DROP TABLE editions",
    "DROP TABLE subscribers",
    "DROP TABLE suppressions",
    "DROP TABLE jobs",
    "ALTER TABLE posts DROP COLUMN in_reply_to",
    "ALTER TABLE sources DROP COLUMN owner",
    "ALTER TABLE sources DROP COLUMN lease_until",
    "UPDATE schema_info SET version = 1",
)


def test_filter_run_round_trips(store_url: str) -> None:
    post = make_post()
    kept = Decision(
        ("Interoperability",),
        {"Interoperability": 0.91, "Health IT": 0.4},
        {"Interoperability": 0.5, "Health IT": 0.5},
        0.09,
    )
    with Store.open(store_url) as store:
        store.add_posts("feed:x", [post])
        store.save_filter_run(NOW, NOW - timedelta(days=7), NOW, ["Interoperability", "Health IT"], [(post.id, kept)])
        run = store.last_filter_run()
    assert run is not None and run.topics == ("Interoperability", "Health IT")
    assert run.verdicts == [(post.id, kept)] and run.decision(post.id) == kept
    assert run.since == NOW - timedelta(days=7) and run.decision("other") is None


def test_a_run_of_decisions_sharing_topics_and_thresholds_reads_back_each_as_saved(store_url: str) -> None:
    """Each distinct topic tuple and threshold table is serialised once per run: rows that share them, and
    rows whose equal-looking tables differ (another threshold, another key order), each read back as saved."""
    posts = [make_post(f"https://news.example/r/{n}") for n in range(6)]
    names = ["Interoperability", "Health IT"]
    usual = {"Interoperability": 0.5, "Health IT": 0.5}
    stricter = {"Interoperability": 0.5, "Health IT": 0.7}
    turned = {"Health IT": 0.5, "Interoperability": 0.5}
    tables = [usual, usual, stricter, turned, usual, {}]
    kept = [("Interoperability",), (), ("Interoperability", "Health IT"), (), ("Interoperability",), ()]
    verdicts = [
        (p.id, Decision(t, {"Interoperability": 0.1 * n, "Health IT": 0.05 * n}, th, 0.01 * n))
        for n, (p, t, th) in enumerate(zip(posts, kept, tables, strict=True))
    ]
    with Store.open(store_url) as store:
        store.add_posts("feed:x", posts)
        store.save_filter_run(NOW, NOW - timedelta(days=7), NOW, names, verdicts)
        run = store.last_filter_run()
    assert run is not None and run.verdicts == verdicts
    assert [list(d.thresholds) for _, d in run.verdicts] == [list(th) for th in tables]  # key order kept


# -- sources shared between collect runs (the processes themselves race in test_races.py) -----------

SOURCES = [(f"feed:https://{n}.example/feed", "feed", f"https://{n}.example/feed") for n in ("a", "b", "c")]
LEASE = timedelta(minutes=5)
ELSEWHERE = "another-machine.example:4242:1"  # not this host: only its lease says when it is gone


def test_a_claim_from_another_machine_is_left_alone_until_its_lease_lapses(store_url: str) -> None:
    a, b, c = (key for key, _, _ in SOURCES)
    with Store.open(store_url) as store:
        theirs = store.claim_sources(SOURCES[:1], ELSEWHERE, NOW, LEASE, limit=10)
        assert set(theirs.claimed) == {a} and theirs.claimed[a].status == "new"  # a new source got its row
        mine = store.claim_sources(SOURCES, "here:1:1", NOW + timedelta(minutes=1), LEASE, limit=1)
        assert set(mine.claimed) == {b}  # one at most, past the one held
        assert mine.held == {a: f"being fetched by another run ({ELSEWHERE}) until 12:05:00 UTC"}
        assert store.claim_sources(
            SOURCES, "third:2:2", NOW + timedelta(minutes=2), LEASE, limit=10
        ).claimed.keys() == {c}
        later = store.claim_sources(SOURCES[:1], "here:1:1", NOW + timedelta(minutes=6), LEASE, limit=10)
        assert set(later.claimed) == {a} and later.taken_over == {a: ELSEWHERE}


def test_a_claim_whose_process_is_gone_is_taken_over_at_once(store_url: str) -> None:
    a = SOURCES[0][0]
    with Store.open(store_url) as store:
        store.claim_sources(SOURCES[:1], "here:99:1", NOW, LEASE, limit=10)
        alive = store.claim_sources(SOURCES[:1], "here:1:1", NOW, LEASE, limit=10, gone=lambda owner: False)
        assert alive.claimed == {} and a in alive.held
        dead = store.claim_sources(
            SOURCES[:1], "here:1:1", NOW, LEASE, limit=10, gone=lambda owner: owner == "here:99:1"
        )
        assert set(dead.claimed) == {a} and dead.taken_over == {a: "here:99:1"}


def test_storing_a_source_ends_its_claim_and_a_fresh_fetch_is_left_alone(store_url: str) -> None:
    a, b, _ = (key for key, _, _ in SOURCES)
    with Store.open(store_url) as store:
        claimed = store.claim_sources(SOURCES[:2], "here:1:1", NOW, LEASE, limit=10).claimed
        state = replace(claimed[a], status="ok", last_attempt=NOW)
        store.add_many([(a, [make_post()], state)], owner="here:1:1")
        store.release_sources("here:1:1")  # b: claimed, never fetched (the run stopped)
        rows = store.source_states()
        assert rows[a].status == "ok" and rows[b].last_attempt is None
        later = NOW + timedelta(seconds=30)
        shared = store.claim_sources(
            SOURCES[:2], "there:2:2", later, LEASE, limit=10, fetched_after=later - timedelta(minutes=1)
        )
        assert set(shared.claimed) == {b} and shared.held == {a: "fetched by another run at 12:00:00 UTC"}
        again = store.claim_sources(
            SOURCES[:1], "there:2:2", later, LEASE, limit=10
        )  # no fetched_after: refetch_after 0
        assert set(again.claimed) == {a}
        assert store.source_states()[a] == rows[a]  # a claim is not the source's state

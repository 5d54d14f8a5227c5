"""`digest.glance` reads a SQLite store's subscriber counts with sqlite3 (so `check` need not load
SQLAlchemy): these hold it to what the store itself answers on the same file, and to stepping aside
(None, so the caller opens the store) whenever it cannot say exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import NOW

from digest import glance
from digest.models import Recipient
from digest.store import SCHEMA_VERSION, Store


def _store_with_every_state(path: Path) -> str:
    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        store.add_subscriber(Recipient("ana@example.org"), NOW)
        store.add_subscriber(Recipient("ben@example.org", status="pending", origin="web"), NOW)
        store.add_subscriber(Recipient("cy@example.org", status="pending", origin="web"), NOW)
        store.add_subscriber(Recipient("dee@example.org", status="bouncing", bounces=3), NOW)
        store.suppress("gone@example.org", NOW)
    return url


def test_the_glance_reads_the_schema_the_store_writes() -> None:
    assert glance.SCHEMA_VERSION == SCHEMA_VERSION  # a new migration must teach the glance (or it steps aside)


@pytest.mark.parametrize("name", ["digest.db", "with space and #hash.db"])
def test_the_glance_counts_what_the_store_counts(tmp_path: Path, name: str) -> None:
    url = _store_with_every_state(tmp_path / name)
    with Store.open(url, read_only=True) as store:
        expected = store.subscriber_counts()
    assert expected == {"confirmed": 1, "pending": 2, "bouncing": 1, "unsubscribed": 1}
    assert glance.subscriber_counts(url) == expected


def test_the_glance_steps_aside_where_it_cannot_say_exactly(tmp_path: Path) -> None:
    older = _store_with_every_state(tmp_path / "older.db")
    with sqlite3.connect(tmp_path / "older.db") as conn:
        conn.execute("UPDATE schema_info SET version = version - 1")
    (tmp_path / "not-a-store.db").write_bytes(b"these bytes are not a SQLite database")
    sqlite3.connect(tmp_path / "empty.db").close()
    for url in (
        older,  # the store itself says it needs migrating
        f"sqlite:///{tmp_path / 'not-a-store.db'}",
        f"sqlite:///{tmp_path / 'empty.db'}",
        f"sqlite:///{tmp_path / 'missing.db'}",
        "sqlite://",
        "postgresql+psycopg://digest:secret@127.0.0.1:1/digest",
    ):
        assert glance.subscriber_counts(url) is None, url

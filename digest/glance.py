"""A glance at a SQLite store with the standard library's sqlite3, for `digest check`: the subscriber
counts without loading SQLAlchemy, whose import alone costs about 0.25 CPU-s. Anything it cannot
answer exactly (another database, another schema version, a file SQLite will not read) is None, and
the caller opens the store, which says what is wrong."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from .dburl import read_only_uri, sqlite_path

__all__ = ["SCHEMA_VERSION", "subscriber_counts"]

# The store schema this glance reads: digest.store's SCHEMA_VERSION (tests/store/test_glance.py holds
# them equal, so a migration that forgets this file fails there, not in a user's `check`).
SCHEMA_VERSION = 10

_STATES = ("pending", "confirmed", "unsubscribed", "bouncing")


def subscriber_counts(url: str) -> dict[str, int] | None:
    """Subscribers by state in an existing SQLite store (``unsubscribed`` counts the suppressions,
    as `Store.subscriber_counts` does), read-only; None when this cannot say exactly."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(read_only_uri(path), uri=True)) as conn:
            (version,) = conn.execute("SELECT version FROM schema_info").fetchone()
            if version != SCHEMA_VERSION:
                return None
            counts = dict.fromkeys(_STATES, 0)
            for status, n in conn.execute("SELECT status, count(*) FROM subscribers GROUP BY status"):
                counts[status] = counts.get(status, 0) + n
            counts["unsubscribed"] += conn.execute("SELECT count(*) FROM suppressions").fetchone()[0]
    except (sqlite3.Error, TypeError):  # not a store, or one mid-creation (TypeError: no schema_info row)
        return None
    return counts

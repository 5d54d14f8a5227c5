"""The store seam: SQLAlchemy Core over SQLite by default (any SQLAlchemy URL works), with migrations.

A fresh database is created at the newest schema; an existing one is migrated step by step
in a transaction, so a file written by an older digest never loses data.

Safe to run twice: two processes may open, migrate and collect into one database at once
(cron beside `digest serve`). The schema is created and migrated under a lock (an advisory lock
on PostgreSQL, a write transaction taken before the version is read on SQLite), and posts, their
links and sources, and source states are written with INSERT ... ON CONFLICT, so a row another
process stored first is never an error and counts as new only for the process that stored it.
Which SQL each database gets is decided here, never by callers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from . import clock, leases
from .errors import LostClaim, StoreError
from .feedback import Signal
from .models import Author, Decision, Delivery, Engagement, Media, Post, Recipient, SourceState

__all__ = ["SCHEMA_VERSION", "DeliveryLog", "FilterRun", "SourceClaims", "Store", "display_url", "suppression_hash"]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, the same out, whatever the backend keeps."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = sa.MetaData()

schema_info = sa.Table("schema_info", metadata, sa.Column("version", sa.Integer, nullable=False))

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False, default="new"),
    sa.Column("last_error", sa.String, nullable=False, default=""),
    sa.Column("failures", sa.Integer, nullable=False, default=0),
    sa.Column("last_attempt", UTCDateTime),
    sa.Column("last_success", UTCDateTime),
    sa.Column("next_attempt", UTCDateTime),
    sa.Column("etag", sa.String, nullable=False, default=""),
    sa.Column("last_modified", sa.String, nullable=False, default=""),
    sa.Column("cursor", sa.String, nullable=False, default=""),
    sa.Column("newest_post", UTCDateTime),
    sa.Column("gap_possible", sa.Boolean, nullable=False, default=False),
    sa.Column("note", sa.String, nullable=False, default=""),
    sa.Column("body_hash", sa.String, nullable=False, default=""),  # the last feed body read, hashed
    sa.Column("title", sa.String, nullable=False, default=""),  # the feed's own title, as last read
    sa.Column("owner", sa.String, nullable=False, default=""),  # the collect run fetching it now (`leases`)
    sa.Column("lease_until", UTCDateTime, nullable=True),  # that claim lapses then unless renewed
)

posts = sa.Table(
    "posts",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("uri", sa.String, nullable=False, unique=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("published", UTCDateTime, nullable=False, index=True),
    sa.Column("author_name", sa.String, nullable=False),
    sa.Column("author_handle", sa.String, nullable=False),
    sa.Column("author_url", sa.String, nullable=False),
    sa.Column("title", sa.String, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("language", sa.String),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("mentions", sa.JSON, nullable=False),
    sa.Column("links", sa.JSON, nullable=False),
    sa.Column("media", sa.JSON, nullable=False),
    sa.Column("is_reply", sa.Boolean, nullable=False),
    sa.Column("in_reply_to", sa.String, nullable=False, server_default=""),
    sa.Column("is_boost", sa.Boolean, nullable=False),
    sa.Column("is_quote", sa.Boolean, nullable=False),
    sa.Column("boosted_by", sa.String, nullable=False),
    sa.Column("content_warning", sa.String, nullable=False),
    sa.Column("sensitive", sa.Boolean, nullable=False),
    sa.Column("replies", sa.Integer),
    sa.Column("boosts", sa.Integer),
    sa.Column("likes", sa.Integer),
    sa.Column("quotes", sa.Integer),
    sa.Column("collected_at", UTCDateTime, nullable=False),
)

post_sources = sa.Table(
    "post_sources",
    metadata,
    sa.Column("post_id", sa.String, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("source", sa.String, primary_key=True),
)

post_links = sa.Table(
    "post_links",
    metadata,
    sa.Column("post_id", sa.String, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("url", sa.String, primary_key=True),
    sa.Index("ix_post_links_url", "url"),
)

filter_runs = sa.Table(
    "filter_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ran_at", UTCDateTime, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("posts", sa.Integer, nullable=False),
    sa.Column("kept", sa.Integer, nullable=False),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("filter_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("post_id", sa.String, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("scores", sa.JSON, nullable=False),
    sa.Column("thresholds", sa.JSON, nullable=False),
    sa.Column("noise_score", sa.Float, nullable=False),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("email", sa.String, primary_key=True),  # lower-cased
    sa.Column("name", sa.String, nullable=False, default=""),
    sa.Column("topics", sa.JSON),  # null: every topic
    sa.Column("status", sa.String, nullable=False),  # pending, confirmed, unsubscribed, bouncing
    sa.Column("origin", sa.String, nullable=False),  # config or web
    sa.Column("bounces", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

editions = sa.Table(
    "editions",
    metadata,
    sa.Column("week", sa.String, primary_key=True),
    sa.Column("path", sa.String, primary_key=True),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("week", sa.String, primary_key=True),
    sa.Column("email", sa.String, primary_key=True),
    sa.Column("path", sa.String, nullable=False),  # which edition
    sa.Column("status", sa.String, nullable=False),  # queued, sending, handed_over, sent, failed
    sa.Column("message_id", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("answer", sa.String, nullable=False, default=""),
    sa.Column("error", sa.String, nullable=False, default=""),
    sa.Column("queued_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("owner", sa.String, nullable=False, default=""),  # the run holding the claim (`leases`)
    sa.Column("lease_until", UTCDateTime, nullable=True),  # the claim lapses then unless renewed
    sa.Column("uncertain", sa.Integer, nullable=False, default=0),  # handovers a crash left unconfirmed
    sa.Index("ix_deliveries_status", "week", "status"),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("hash", sa.String, primary_key=True),  # `suppression_hash` of the address; never the address
    sa.Column("created_at", UTCDateTime, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("name", sa.String, primary_key=True),  # send, collect, chat
    sa.Column("period", sa.String, primary_key=True),  # the ISO week, or the collection slot
    sa.Column("status", sa.String, nullable=False),  # running, done, failed
    sa.Column("owner", sa.String, nullable=False, default=""),  # host:pid of the process running it
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("detail", sa.String, nullable=False, default=""),  # a one-line summary or the error
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),  # the lease: a running job renews it
)

signals = sa.Table(  # readers' "not for me" / "more like this" (issue 17); see `SignalRecords`
    "signals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String, nullable=True),  # null once the reader unsubscribed: an anonymous count
    sa.Column("post_id", sa.String, nullable=False, index=True),
    sa.Column("topic", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),  # less, more
    sa.Column("text", sa.Text, nullable=False),  # the post's document, so the signal outlives the post
    sa.Column("author", sa.String, nullable=False),  # the post's account key (`rank.account_key`)
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("email", "post_id", "topic", name="uq_signals_reader"),
)

examples = sa.Table(  # signals a curator (or enough agreeing readers) turned into a topic's labelled examples
    "examples",
    metadata,
    sa.Column("topic", sa.String, primary_key=True),
    sa.Column("post_id", sa.String, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("label", sa.Boolean, nullable=False),  # True: about the topic, False: not
    sa.Column("origin", sa.String, nullable=False),  # curator, readers (auto-accepted)
    sa.Column("accepted_at", UTCDateTime, nullable=False),
)

# A fixed salt, not the [subscription] secret: a suppression must outlive a rotated secret and work
# for the command line with no secret at all. It only makes the hashes digest's own; an address
# can still be tested against the list by someone who has the database and guesses it.
SUPPRESSION_SALT = b"digest-suppression-v1:"


def suppression_hash(address: str) -> str:
    """The suppression record of an address: SHA-256 of the salt and the trimmed, lower-cased address."""
    return hashlib.sha256(SUPPRESSION_SALT + address.strip().lower().encode("utf-8")).hexdigest()


def _move_unsubscribed_to_suppressions(conn: Connection) -> None:
    """Migration 4: create the new tables; each unsubscribed row becomes a suppression and is deleted."""
    metadata.create_all(conn, tables=[suppressions, jobs])
    gone = conn.execute(sa.select(subscribers.c.email).where(subscribers.c.status == "unsubscribed")).scalars().all()
    now = clock.now()
    for email in gone:
        conn.execute(suppressions.insert().values(hash=suppression_hash(email), created_at=now))
    conn.execute(subscribers.delete().where(subscribers.c.status == "unsubscribed"))


def _add_columns(table: str, ddl: dict[str, str]) -> Callable[[Connection], None]:
    """A migration step adding each column of ``ddl`` (name -> type and default) that ``table`` lacks."""

    def add(conn: Connection) -> None:
        have = {c["name"] for c in sa.inspect(conn).get_columns(table)}
        for column, spec in ddl.items():
            if column not in have:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {spec}")

    return add


_CLAIM_COLUMNS = {"owner": "VARCHAR NOT NULL DEFAULT ''", "lease_until": "TIMESTAMP"}


Migration = str | Callable[[Connection], None]

# Migrations from version N-1 to N, applied in order to an existing database. A fresh database
# is created from `metadata` at SCHEMA_VERSION directly, so add a step here with every change.
MIGRATIONS: dict[int, Sequence[Migration]] = {
    2: [lambda conn: metadata.create_all(conn, tables=[filter_runs, decisions])],  # the topic filter's record
    3: [lambda conn: metadata.create_all(conn, tables=[subscribers, editions, deliveries])],  # the mailer's
    4: [_move_unsubscribed_to_suppressions],  # the subscription pages: suppressions, the serve schedule's jobs
    5: [_add_columns("posts", {"in_reply_to": "VARCHAR NOT NULL DEFAULT ''"})],  # chat recaps: a post's parent
    6: [_add_columns("deliveries", {**_CLAIM_COLUMNS, "uncertain": "INTEGER NOT NULL DEFAULT 0"})],  # shared sending
    7: [_add_columns("sources", _CLAIM_COLUMNS)],  # several collect runs share the sources: claims and leases
    8: [_add_columns("sources", {"body_hash": "VARCHAR NOT NULL DEFAULT ''"})],  # an unchanged feed is not parsed
    9: [_add_columns("sources", {"title": "VARCHAR NOT NULL DEFAULT ''"})],  # publication names on cards
    10: [lambda conn: metadata.create_all(conn, tables=[signals, examples])],  # readers' feedback, accepted examples
}
SCHEMA_VERSION = 1 + len(MIGRATIONS)

_ENGAGEMENT = ("replies", "boosts", "likes", "quotes")
# Fresh counts for posts seen again; a count the source does not give (None) keeps the stored one.
_ENGAGEMENT_UPDATE = (
    posts.update()
    .where(posts.c.id == sa.bindparam("_id"))
    .values({k: sa.func.coalesce(sa.bindparam(f"_{k}"), posts.c[k]) for k in _ENGAGEMENT})
)


# INSERT ... ON CONFLICT for the databases that have it; any other one inserts row by row in savepoints.
_ON_CONFLICT: dict[str, Callable[[sa.Table], Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# The transaction-level advisory lock held while PostgreSQL's schema is created or migrated.
_SCHEMA_LOCK = int.from_bytes(hashlib.sha256(b"digest schema").digest()[:8], "big", signed=True)
# A write that lost a deadlock (PostgreSQL) or outwaited the busy timeout (SQLite) is tried again.
_WRITE_ATTEMPTS = 4
_T = TypeVar("_T")
_TRANSIENT_SQLSTATES = ("40001", "40P01")  # serialization_failure, deadlock_detected


def display_url(url: str) -> str:
    """A database URL fit to print or log: the password, if any, masked as ``***``."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):  # not a URL SQLAlchemy reads; still hide what looks like a password
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # A new file switched to WAL by two processes at once: the loser is told "database is locked"
    # at once, whatever the busy timeout, so it tries again until the other one is done.
    deadline = time.monotonic() + 10
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as exc:
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# What SQLite says when the environment, not digest, is at fault, and what a person should do.
_ENVIRONMENT_FAILURES = (
    ("database or disk is full", "the disk (or the database's size limit) is full: free some space and run it again"),
    ("disk I/O error", "the disk failed a read or write: check the disk and free space, then run it again"),
    (
        "database disk image is malformed",
        "the database file is corrupt: restore it from a backup, or move it away to start afresh",
    ),
    (
        "file is not a database",
        "the file is not a digest database (corrupt, or another program's): restore it "
        "from a backup, or move it away to start afresh",
    ),
    (
        "attempt to write a readonly database",
        "the database is read-only here: check the permissions of the file and of its folder",
    ),
    (
        "unable to open database file",
        "the database cannot be opened: check that its folder exists and that "
        "this user may read and write the file and the folder",
    ),
)


def environment_failure(exc: BaseException) -> str:
    """One line saying what is wrong with the database's environment (full, corrupt, read-only,
    locked too long), or "" when ``exc`` is not such a failure."""
    text = str(getattr(exc, "orig", None) or exc)
    for marker, advice in _ENVIRONMENT_FAILURES:
        if marker in text:
            return f"{marker}: {advice}"
    if "database is locked" in text:
        return "database is locked: another digest process held it too long; run it again when that one is done"
    return ""


def _raise_environment_failure(context: Any) -> None:
    """An engine ``handle_error`` hook: a full disk, a corrupt or read-only file becomes a `StoreError`
    naming the database and the fix (a lock is left alone: writes retry it)."""
    exc = context.original_exception
    if "database is locked" in str(exc):
        return
    reason = environment_failure(exc)
    if reason:
        url = context.engine.url.render_as_string(hide_password=True) if context.engine is not None else "database"
        raise StoreError(f"{url}: {reason}") from exc


def _transient(exc: sa.exc.DBAPIError) -> bool:
    """A failure that a new attempt of the same transaction can get past."""
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES or "database is locked" in str(exc.orig)


def _retried(work: Callable[[], _T]) -> _T:
    """Run a write transaction, again after a short wait when another process had the database locked."""
    for attempt in range(1, _WRITE_ATTEMPTS):
        try:
            return work()
        except sa.exc.OperationalError as exc:
            if not _transient(exc):
                raise
            time.sleep(0.05 * attempt)
    return work()


class SignalRecords:
    """Readers' signals and the examples accepted from them (issue 17). A reader has at most one signal per
    post and topic: pressing the other button replaces it, pressing the same one again changes nothing."""

    engine: Engine

    def record_signal(self, signal: Signal) -> None:
        row = {
            "email": signal.email.lower(),
            "post_id": signal.post_id,
            "topic": signal.topic,
            "kind": signal.kind,
            "text": signal.text,
            "author": signal.author,
            "created_at": signal.at,
        }
        mine = (signals.c.email == row["email"], signals.c.post_id == signal.post_id, signals.c.topic == signal.topic)
        with self.engine.begin() as conn:
            conn.execute(signals.delete().where(*mine, signals.c.kind != signal.kind))
            _insert_new(conn, signals, [row])  # a second press, here or in another process, is the same signal

    def undo_signal(self, email: str, post_id: str, topic: str) -> bool:
        """Take a reader's signal back; True when there was one."""
        mine = (signals.c.email == email.lower(), signals.c.post_id == post_id, signals.c.topic == topic)
        with self.engine.begin() as conn:
            return bool(conn.execute(signals.delete().where(*mine)).rowcount)

    def signals(self, *, email: str | None = None, post_id: str | None = None) -> list[Signal]:
        """Signals, oldest first: one reader's, one post's, or (neither given) all of them."""
        query = sa.select(signals).order_by(signals.c.created_at, signals.c.id)
        if email is not None:
            query = query.where(signals.c.email == email.lower())
        if post_id is not None:
            query = query.where(signals.c.post_id == post_id)
        with self.engine.connect() as conn:
            return [_signal(row) for row in conn.execute(query)]

    def accept_examples(self, items: Sequence[tuple[str, str, str, bool]], origin: str, now: datetime) -> None:
        """Keep (topic, post id, text, label) as accepted examples; accepting a post again replaces its label."""
        with self.engine.begin() as conn:
            for topic, post_id, _, _ in items:
                conn.execute(examples.delete().where(examples.c.topic == topic, examples.c.post_id == post_id))
            rows = [
                {"topic": t, "post_id": p, "text": x, "label": y, "origin": origin, "accepted_at": now}
                for t, p, x, y in items
            ]
            _insert_new(conn, examples, rows)

    def examples(self) -> list[dict[str, Any]]:
        """Every accepted example: topic, post_id, text, label, origin, accepted_at."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(examples).order_by(examples.c.topic, examples.c.accepted_at))
            return [r._asdict() for r in rows]


class Store(SignalRecords):
    """Posts and source state, behind a SQLAlchemy engine; open with `Store.open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, read_only: bool = False) -> Store:
        """Open (creating and migrating as needed) the database at a SQLAlchemy URL; ``read_only``
        for commands that only read, so they work on a file or in a folder this user cannot write."""
        shown = display_url(url)
        if read_only and url.startswith("sqlite:///"):
            return cls._open_sqlite_read_only(url)
        try:
            engine = sa.create_engine(url)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:  # an unknown database or a driver not installed
            hint = (
                "; install digest with its postgres extra: pip install 'digest[postgres]'"
                if "psycopg" in str(exc)
                else ""
            )
            raise StoreError(f"{shown}: cannot open the database: {exc}{hint}") from None
        except (sa.exc.ArgumentError, ValueError):
            raise StoreError(f"{shown}: cannot open the database: not a SQLAlchemy database URL") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "handle_error", _raise_environment_failure)
        store = cls(engine)
        try:
            _retried(store._migrate)
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(
                f"{shown}: cannot open the database: {exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}"
            ) from None
        except StoreError:
            engine.dispose()
            raise
        return store

    @classmethod
    def _open_sqlite_read_only(cls, url: str) -> Store:
        """A SQLite file opened read-only, never created or migrated; in a folder this user cannot
        write (where SQLite cannot make its WAL index) as an immutable file."""
        path = Path(url.removeprefix("sqlite:///"))
        immutable = "&immutable=1" if not os.access(path.parent, os.W_OK) else ""
        engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro{immutable}&uri=true")
        sa.event.listen(engine, "handle_error", _raise_environment_failure)
        store = cls(engine)
        try:
            version = store.version
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(f"{path}: cannot read the database: {getattr(exc, 'orig', None) or exc}") from None
        except StoreError:
            engine.dispose()
            raise
        if version != SCHEMA_VERSION:
            engine.dispose()
            raise StoreError(
                f"{path}: schema version {version}, this digest knows {SCHEMA_VERSION}: run a command that "
                "writes (digest collect) where the file can be written, to migrate it"
            )
        return store

    def close(self) -> None:
        self.engine.dispose()

    @property
    def _where(self) -> str:
        """The database's URL for messages, its password masked."""
        return self.engine.url.render_as_string(hide_password=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction that holds the write lock from its first statement: on SQLite
        BEGIN IMMEDIATE (waiting up to the busy timeout for another writer), so what it reads
        cannot change before it writes."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def _migrate(self) -> None:
        """Create or migrate the schema, one process at a time: the version is read under the lock,
        so a second process opening a new or old database waits and then finds it done."""
        with self._writing() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            if not sa.inspect(conn).has_table("schema_info"):
                metadata.create_all(conn)
                conn.execute(schema_info.insert().values(version=SCHEMA_VERSION))
                return
            version = conn.execute(sa.select(schema_info.c.version)).scalar_one()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._where}: schema version {version} was written by a newer digest "
                    f"(this one knows {SCHEMA_VERSION}); upgrade digest"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    if callable(statement):
                        statement(conn)
                    else:
                        conn.exec_driver_sql(statement)
            conn.execute(schema_info.update().values(version=SCHEMA_VERSION))

    @property
    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(schema_info.c.version)).scalar_one())

    # -- sources --------------------------------------------------------------------------

    def source_states(self) -> dict[str, SourceState]:
        """Every source's remembered state, by key."""
        with self.engine.connect() as conn:
            return {row.key: _source_state(row) for row in conn.execute(sa.select(sources))}

    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace one source's state."""
        with self._writing() as conn:
            self._save_states(conn, [state])

    # -- sources shared between collect runs ----------------------------------------------

    def claim_sources(
        self,
        wanted: Sequence[tuple[str, str, str]],
        owner: str,
        now: datetime,
        lease: timedelta,
        *,
        limit: int,
        fetched_after: datetime | None = None,
        gone: Callable[[str], bool] = leases.is_gone,
    ) -> SourceClaims:
        """Claim up to ``limit`` of the ``wanted`` sources (key, kind, url) for ``owner`` to fetch now,
        until ``now + lease``. A source is free unless another run holds a live claim on it (its lease
        has not lapsed and its owner is not gone, see `leases`) or, when ``fetched_after`` is given, a
        run fetched it after that moment; a new key gets its row first.

        Safe between processes and machines: on PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``
        (a row another claim is deciding on is skipped, and stays wanted for the next call); on SQLite
        the whole claim is one ``BEGIN IMMEDIATE`` transaction. Each row is taken by a compare-and-set
        on the owner read. Returns the claimed sources' states as stored and, for the others that
        are not free, why.
        """
        claims = SourceClaims()
        kinds = {key: (kind, url) for key, kind, url in wanted}

        def verdict(row: Any) -> str:
            """Why ``row`` is not free for ``owner`` now, or "" when it is."""
            if row.owner and row.owner != owner and row.lease_until and row.lease_until > now and not gone(row.owner):
                return f"being fetched by another run ({row.owner}) until {row.lease_until:%H:%M:%S} UTC"
            if not row.owner and fetched_after and row.last_attempt and row.last_attempt > fetched_after:
                return f"fetched by another run at {row.last_attempt:%H:%M:%S} UTC"
            return ""

        with self._writing() as conn:
            rows = _select_in(conn, sources, sources.c.key, set(kinds))
            missing = sorted(set(kinds) - {row.key for row in rows})
            if missing:  # new sources get their row (another process may be adding the same ones)
                _insert_new(conn, sources, [{"key": k, "kind": kinds[k][0], "url": kinds[k][1]} for k in missing])
                rows.extend(_select_in(conn, sources, sources.c.key, set(missing)))
            free = []
            for row in sorted(rows, key=lambda row: row.key):
                why = verdict(row)
                if why:
                    claims.held[row.key] = why
                else:
                    free.append(row.key)
            if not free:
                return claims
            # Lock the first free rows no other claim is deciding on right now; read them again, locked.
            locking = (
                sa.select(sources)
                .where(sources.c.key.in_(free))
                .order_by(sources.c.key)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            for row in conn.execute(locking).all():
                why = verdict(row)
                if why:  # another run claimed or fetched it since the first read
                    claims.held[row.key] = why
                    continue
                taken = conn.execute(
                    sources.update()
                    .where(sources.c.key == row.key, sources.c.owner == row.owner)
                    .values(owner=owner, lease_until=now + lease)
                )
                if taken.rowcount == 1:
                    claims.claimed[row.key] = _source_state(row)
                    if row.owner and row.owner != owner:
                        claims.taken_over[row.key] = row.owner
        return claims

    def renew_sources(self, owner: str, until: datetime) -> None:
        """Extend the lease on every source ``owner`` is fetching."""
        with self._writing() as conn:
            conn.execute(sources.update().where(sources.c.owner == owner).values(lease_until=until))

    def release_sources(self, owner: str, keys: Collection[str] | None = None) -> None:
        """Give back ``owner``'s claims (on ``keys``, or all of them) without recording a fetch."""
        query = sources.update().where(sources.c.owner == owner)
        if keys is not None:
            query = query.where(sources.c.key.in_(list(keys)))
        with self._writing() as conn:
            conn.execute(query.values(owner="", lease_until=None))

    # -- posts ----------------------------------------------------------------------------

    def add_posts(self, source_key: str, items: Iterable[Post], state: SourceState | None = None) -> int:
        """Store posts seen through a source (and its state, in the same transaction); return how many were new."""
        return self.add_many([(source_key, list(items), state)])[0]

    def add_many(
        self, batches: Sequence[tuple[str, Sequence[Post], SourceState | None]], *, owner: str = ""
    ) -> list[int]:
        """Store several sources' posts and states in one transaction; return each source's count of new posts.

        A post already stored (by id) gains the source and fresh engagement counts; a post new in this
        batch counts as new for the first source that brought it. Another process storing the same
        posts at the same moment is no error: each post counts as new only for the one that stored it.
        With ``owner``, the claims it holds on these sources (`claim_sources`) end in the same transaction.
        """
        try:
            return _retried(lambda: self._add_many(batches, owner))
        except sa.exc.SQLAlchemyError as exc:
            why = getattr(exc, "orig", None) or exc
            raise StoreError(f"{self._where}: cannot store posts: {exc.__class__.__name__}: {why}") from None

    def _add_many(self, batches: Sequence[tuple[str, Sequence[Post], SourceState | None]], owner: str) -> list[int]:
        now = clock.now()
        with self._writing() as conn:
            ids = {p.id for _, items, _ in batches for p in items}
            known = _existing(conn, posts.c.id, ids)
            sourced = {(r.post_id, r.source) for r in _select_in(conn, post_sources, post_sources.c.post_id, known)}
            fresh: dict[str, tuple[int, Post]] = {}  # id -> (the batch that brought it first, the post)
            seen: list[Post] = []
            pairs: set[tuple[str, str]] = set()
            for i, (key, items, _) in enumerate(batches):
                for post in {p.id: p for p in items}.values():
                    seen.append(post)
                    if (post.id, key) not in sourced:
                        pairs.add((post.id, key))
                    if post.id not in known:
                        fresh.setdefault(post.id, (i, post))
            # Rows go in key order, the same in every process, so two writers never deadlock.
            rows = [_post_row(post, now) for _, (_, post) in sorted(fresh.items())]
            inserted = _insert_new(conn, posts, rows, posts.c.id)
            counts = [0] * len(batches)
            for post_id in inserted:
                counts[fresh[post_id][0]] += 1
            links = sorted({(pid, link) for pid in inserted for link in fresh[pid][1].links})
            _insert_new(conn, post_links, [{"post_id": p, "url": u} for p, u in links])
            _insert_new(conn, post_sources, [{"post_id": p, "source": k} for p, k in sorted(pairs)])
            # Fresh counts for posts stored before (by an earlier run, or by another process just now).
            updates = [
                {"_id": post.id, **{f"_{k}": v for k, v in asdict(post.engagement).items()}}
                for post in sorted(seen, key=lambda post: post.id)
                if post.id not in inserted
            ]
            if updates:
                conn.execute(_ENGAGEMENT_UPDATE, updates)
            self._save_states(conn, [state for _, _, state in batches if state is not None])
            if owner:
                conn.execute(
                    sources.update()
                    .where(sources.c.owner == owner, sources.c.key.in_(sorted({key for key, _, _ in batches})))
                    .values(owner="", lease_until=None)
                )
        return counts

    def _save_states(self, conn: Connection, states: Sequence[SourceState]) -> None:
        """Insert or replace each source's state (the last one given for a key wins)."""
        if not states:
            return
        upsert = _ON_CONFLICT.get(conn.dialect.name)
        if upsert is not None:
            rows = sorted({s.key: asdict(s) for s in states}.values(), key=lambda row: row["key"])
            statement = upsert(sources)
            replace = {c: statement.excluded[c] for c in _STATE_FIELDS if c != "key"}  # a claim is not state
            conn.execute(statement.on_conflict_do_update(index_elements=[sources.c.key], set_=replace), rows)
            return
        existing = _existing(conn, sources.c.key, {s.key for s in states})
        rows = [asdict(s) for s in states]
        updates = [{"_key": row["key"], **row} for row in rows if row["key"] in existing]
        if updates:
            conn.execute(sources.update().where(sources.c.key == sa.bindparam("_key")), updates)
        inserts = [row for row in rows if row["key"] not in existing]
        if inserts:
            conn.execute(sources.insert(), inserts)

    def post(self, id_or_url: str) -> Post | None:
        """One post by id, URI or permalink."""
        query = sa.select(posts).where(
            sa.or_(posts.c.id == id_or_url, posts.c.uri == id_or_url, posts.c.url == id_or_url)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return _row_post(row) if row else None

    def posts(self, since: datetime | None = None, until: datetime | None = None) -> list[Post]:
        """Posts published in ``[since, until)``, oldest first."""
        query = sa.select(posts).order_by(posts.c.published, posts.c.id)
        if since is not None:
            query = query.where(posts.c.published >= since)
        if until is not None:
            query = query.where(posts.c.published < until)
        with self.engine.connect() as conn:
            return [_row_post(row) for row in conn.execute(query)]

    def count_posts(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(posts)).scalar_one())

    def sources_of(self, post_id: str) -> list[str]:
        """Keys of every source a post was seen through."""
        query = (
            sa.select(post_sources.c.source).where(post_sources.c.post_id == post_id).order_by(post_sources.c.source)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def posts_linking(self, url: str) -> list[str]:
        """Ids of posts that share a (canonical) link."""
        query = sa.select(post_links.c.post_id).where(post_links.c.url == url).order_by(post_links.c.post_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    # -- topic filter runs -------------------------------------------------------------

    def save_filter_run(
        self,
        ran_at: datetime,
        since: datetime,
        until: datetime,
        topics: Sequence[str],
        verdicts: Sequence[tuple[str, Decision]],
    ) -> int:
        """Record one filter run: each post's decision, in batch order; return the run's id."""
        kept = sum(1 for _, d in verdicts if d.topics)
        with self.engine.begin() as conn:
            run = conn.execute(
                filter_runs.insert()
                .values(ran_at=ran_at, since=since, until=until, topics=list(topics), posts=len(verdicts), kept=kept)
                .returning(filter_runs.c.id)
            ).scalar_one()
            rows = [
                {
                    "run_id": run,
                    "post_id": pid,
                    "position": i,
                    "topics": list(d.topics),
                    "scores": d.scores,
                    "thresholds": d.thresholds,
                    "noise_score": d.noise_score,
                }
                for i, (pid, d) in enumerate(verdicts)
            ]
            if rows:
                conn.execute(decisions.insert(), rows)
        return int(run)

    def last_filter_run(self, at_or_before: datetime | None = None) -> FilterRun | None:
        """The newest filter run (that ran at or before a moment, when given) with its decisions in
        batch order, or None before the first."""
        query = sa.select(filter_runs).order_by(filter_runs.c.id.desc()).limit(1)
        if at_or_before is not None:
            query = query.where(filter_runs.c.ran_at <= at_or_before)
        with self.engine.connect() as conn:
            run = conn.execute(query).first()
            if run is None:
                return None
            rows = conn.execute(
                sa.select(decisions).where(decisions.c.run_id == run.id).order_by(decisions.c.position)
            ).all()
        verdicts = [
            (r.post_id, Decision(tuple(_json(r.topics)), _json(r.scores), _json(r.thresholds), r.noise_score))
            for r in rows
        ]
        return FilterRun(run.id, run.ran_at, run.since, run.until, tuple(_json(run.topics)), verdicts)

    # -- subscribers, editions, deliveries ---------------------------------------------

    def sync_config_subscribers(self, listed: Sequence[Recipient], now: datetime) -> None:
        """Make the store's subscribers match those listed in feeds.toml: add new ones as confirmed,
        refresh names and topics, and never revive one who unsubscribed (a suppressed address) or
        keeps bouncing."""
        with self.engine.begin() as conn:
            known = {r.email: r for r in conn.execute(sa.select(subscribers))}
            suppressed = set(conn.execute(sa.select(suppressions.c.hash)).scalars())
            for item in listed:
                email = item.email.lower()
                if suppression_hash(email) in suppressed:
                    continue
                row = {"name": item.name, "topics": list(item.topics) if item.topics is not None else None}
                if email not in known:
                    conn.execute(
                        subscribers.insert().values(
                            email=email,
                            status="confirmed",
                            origin="config",
                            bounces=0,
                            created_at=now,
                            updated_at=now,
                            **row,
                        )
                    )
                elif known[email].origin == "config":
                    conn.execute(subscribers.update().where(subscribers.c.email == email).values(updated_at=now, **row))

    def add_subscriber(self, recipient: Recipient, now: datetime) -> None:
        """Insert or replace one subscriber (the subscription pages use this)."""
        values = {
            "email": recipient.email.lower(),
            "name": recipient.name,
            "status": recipient.status,
            "topics": list(recipient.topics) if recipient.topics is not None else None,
            "origin": recipient.origin,
            "bounces": recipient.bounces,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            done = conn.execute(subscribers.update().where(subscribers.c.email == values["email"]).values(values))
            if done.rowcount == 0:
                conn.execute(subscribers.insert().values(created_at=now, **values))

    def subscribers(self, status: str | None = None) -> list[Recipient]:
        """Every subscriber (or those with one status), by address."""
        query = sa.select(subscribers).order_by(subscribers.c.email)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            return [_recipient(row) for row in conn.execute(query)]

    def subscriber(self, email: str) -> Recipient | None:
        """One subscriber by address, or None."""
        query = sa.select(subscribers).where(subscribers.c.email == email.strip().lower())
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _recipient(row) if row else None

    def subscriber_counts(self) -> dict[str, int]:
        """How many subscribers are in each state; ``unsubscribed`` counts the suppressions."""
        counts = dict.fromkeys(("pending", "confirmed", "unsubscribed", "bouncing"), 0)
        with self.engine.connect() as conn:
            query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
            for status, n in conn.execute(query):
                counts[status] = counts.get(status, 0) + int(n)
            counts["unsubscribed"] += int(
                conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar_one()
            )
        return counts

    def drop_pending(self, before: datetime) -> int:
        """Forget subscriptions still unconfirmed since before ``before``; return how many."""
        query = subscribers.delete().where(subscribers.c.status == "pending", subscribers.c.updated_at < before)
        with self.engine.begin() as conn:
            return int(conn.execute(query).rowcount)

    # -- suppressions: what is left of an address that unsubscribed ----------------------

    def unsubscribe(self, email: str, now: datetime) -> bool:
        """Forget an address and keep only its suppression (hash and date), in one transaction: the
        subscriber row goes, and its past deliveries keep only a pseudonym (so the archive still
        knows which weeks went out). True when it was a subscriber."""
        email = email.strip().lower()
        with self.engine.begin() as conn:
            gone = conn.execute(subscribers.delete().where(subscribers.c.email == email)).rowcount
            conn.execute(
                deliveries.update()
                .where(deliveries.c.email == email)
                .values(email="unsubscribed:" + suppression_hash(email)[:32], message_id="", answer="", error="")
            )
            conn.execute(signals.update().where(signals.c.email == email).values(email=None))  # counts only
            self._suppress(conn, email, now)
        return bool(gone)

    def suppress(self, email: str, now: datetime) -> None:
        """Add an address to the suppression list (kept as its hash), if it is not there yet."""
        with self.engine.begin() as conn:
            self._suppress(conn, email, now)

    def _suppress(self, conn: Connection, email: str, now: datetime) -> None:
        digest = suppression_hash(email)
        if conn.execute(sa.select(suppressions.c.hash).where(suppressions.c.hash == digest)).first() is None:
            conn.execute(suppressions.insert().values(hash=digest, created_at=now))

    def suppressed(self, email: str) -> datetime | None:
        """When an address was suppressed, or None when it is not."""
        query = sa.select(suppressions.c.created_at).where(suppressions.c.hash == suppression_hash(email))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def lift_suppression(self, email: str) -> None:
        """Take an address off the suppression list (the person subscribed again and confirmed)."""
        with self.engine.begin() as conn:
            conn.execute(suppressions.delete().where(suppressions.c.hash == suppression_hash(email)))

    def record_bounce(self, email: str, limit: int, now: datetime) -> bool:
        """Count a hard bounce; at ``limit`` the address is marked bouncing. True when it now is."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.email == email.lower())).first()
            if row is None:
                return False
            bounces = row.bounces + 1
            status = "bouncing" if bounces >= limit and row.status == "confirmed" else row.status
            conn.execute(
                subscribers.update()
                .where(subscribers.c.email == row.email)
                .values(bounces=bounces, status=status, updated_at=now)
            )
            return status == "bouncing"

    def save_editions(
        self, week: str, items: Sequence[tuple[str, Sequence[str], str, str, str]], now: datetime
    ) -> None:
        """Keep a week's editions as first composed: (path, topics, subject, html, text), html and text
        with their placeholders. A re-run of the week sends the same editions."""
        with self.engine.begin() as conn:
            have = set(conn.execute(sa.select(editions.c.path).where(editions.c.week == week)).scalars())
            rows = [
                {
                    "week": week,
                    "path": path,
                    "topics": list(topics),
                    "subject": subject,
                    "html": html,
                    "text": text,
                    "created_at": now,
                }
                for path, topics, subject, html, text in items
                if path not in have
            ]
            _insert_new(conn, editions, rows)  # a second run composing the week at once keeps the first set

    def editions(self, week: str) -> dict[str, dict[str, Any]]:
        """A week's stored editions by path."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(editions).where(editions.c.week == week).order_by(editions.c.path))
            return {r.path: {**r._asdict(), "topics": tuple(_json(r.topics))} for r in rows}

    def weeks(self) -> list[str]:
        """Every week with a stored edition, newest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(editions.c.week).distinct().order_by(editions.c.week.desc())).scalars())

    def sent_weeks(self) -> list[str]:
        """Weeks whose editions went out (at least one delivery sent or handed over), newest first."""
        query = (
            sa.select(deliveries.c.week)
            .where(deliveries.c.status.in_(("sent", "handed_over")))
            .distinct()
            .order_by(deliveries.c.week.desc())
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def queue_deliveries(self, week: str, items: Sequence[tuple[str, str, str]], now: datetime) -> int:
        """Queue (email, path, message id) for a week unless already queued (by this run or another at the
        same moment); return how many this call queued."""
        with self.engine.begin() as conn:
            have = set(conn.execute(sa.select(deliveries.c.email).where(deliveries.c.week == week)).scalars())
            rows = [
                {
                    "week": week,
                    "email": email,
                    "path": path,
                    "status": "queued",
                    "message_id": mid,
                    "attempts": 0,
                    "answer": "",
                    "error": "",
                    "queued_at": now,
                    "updated_at": now,
                    "owner": "",
                    "lease_until": None,
                    "uncertain": 0,
                }
                for email, path, mid in items
                if email not in have
            ]
            return len(_insert_new(conn, deliveries, rows, deliveries.c.email))

    def claim_deliveries(
        self,
        week: str,
        owner: str,
        now: datetime,
        lease: timedelta,
        *,
        limit: int,
        only: Collection[str] | None = None,
        gone: Callable[[str], bool] = leases.is_gone,
    ) -> list[tuple[Delivery, str]]:
        """Claim up to ``limit`` of the week's unfinished deliveries for ``owner``: queued ones, and those
        whose holder's lease lapsed or whose holder is gone (see `leases`). Each row is taken by a
        compare-and-set on the status and owner read, so two runs never hold the same delivery.

        Returns each claimed delivery (now ``sending``) with the status it had: ``handed_over`` means
        its last holder died between recording the handover and the server's answer (uncertain).
        """
        open_rows = (
            sa.select(deliveries.c.email, deliveries.c.status, deliveries.c.owner, deliveries.c.lease_until)
            .where(deliveries.c.week == week, deliveries.c.status.in_(_UNFINISHED))
            .order_by(deliveries.c.email)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(open_rows).all()
        verdicts: dict[str, bool] = {}

        def free(row: Any) -> bool:
            if only is not None and row.email not in only:
                return False
            if row.status == "queued" or not row.owner or row.lease_until is None or row.lease_until <= now:
                return True
            if row.owner not in verdicts:
                verdicts[row.owner] = row.owner != owner and gone(row.owner)
            return verdicts[row.owner]

        chosen = [r for r in rows if free(r)]
        if not chosen:
            return []
        claimed: dict[str, str] = {}
        with self.engine.begin() as conn:  # the first statement writes: SQLite takes its write lock at once
            for r in chosen:  # past the rows another run took since they were read, up to the limit
                if len(claimed) >= limit:
                    break
                taken = conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.week == week,
                        deliveries.c.email == r.email,
                        deliveries.c.status == r.status,
                        deliveries.c.owner == r.owner,
                    )
                    .values(
                        status="sending",
                        owner=owner,
                        lease_until=now + lease,
                        updated_at=now,
                        uncertain=deliveries.c.uncertain + (1 if r.status == "handed_over" else 0),
                    )
                )
                if taken.rowcount == 1:
                    claimed[r.email] = r.status
        mine = sa.select(deliveries).where(
            deliveries.c.week == week, deliveries.c.owner == owner, deliveries.c.email.in_(list(claimed))
        )
        with self.engine.connect() as conn:
            got = [_delivery(row) for row in conn.execute(mine.order_by(deliveries.c.email))]
        return [(d, claimed[d.email]) for d in got if d.status == "sending"]

    def renew_deliveries(self, week: str, owner: str, until: datetime) -> None:
        """Extend the lease on every delivery of the week that ``owner`` still holds."""
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.week == week,
                    deliveries.c.owner == owner,
                    deliveries.c.status.in_(("sending", "handed_over")),
                )
                .values(lease_until=until)
            )

    def release_deliveries(self, week: str, owner: str, now: datetime) -> int:
        """Give back the deliveries ``owner`` claimed but did not hand over: queued again for any run."""
        with self.engine.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(deliveries.c.week == week, deliveries.c.owner == owner, deliveries.c.status == "sending")
                .values(status="queued", owner="", lease_until=None, updated_at=now)
            )
        return int(result.rowcount or 0)

    def deliveries(self, week: str) -> list[Delivery]:
        """A week's deliveries, by address."""
        query = sa.select(deliveries).where(deliveries.c.week == week).order_by(deliveries.c.email)
        with self.engine.connect() as conn:
            return [_delivery(row) for row in conn.execute(query)]

    # -- the serve schedule's jobs ------------------------------------------------------

    def claim_job(
        self, name: str, period: str, owner: str, now: datetime, *, lease: timedelta, retry_after: timedelta
    ) -> bool:
        """Take the job ``name`` for ``period`` unless it is done, held by a live lease, or failed less
        than ``retry_after`` ago. Safe between processes: a new row is guarded by its primary key and a
        stale one is taken by a compare-and-set on the values read."""
        key = (jobs.c.name == name) & (jobs.c.period == period)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(key)).first()
        if row is None:
            values = {"status": "running", "owner": owner, "attempts": 1, "detail": "", "updated_at": now}
            try:
                with self.engine.begin() as conn:
                    conn.execute(jobs.insert().values(name=name, period=period, started_at=now, **values))
            except sa.exc.IntegrityError:
                return False  # another process took it first
            return True
        stale = (row.status == "running" and row.updated_at + lease <= now) or (
            row.status == "failed" and row.updated_at + retry_after <= now
        )
        if not stale:
            return False
        with self.engine.begin() as conn:
            taken = conn.execute(
                jobs.update()
                .where(key, jobs.c.status == row.status, jobs.c.updated_at == row.updated_at)
                .values(status="running", owner=owner, attempts=row.attempts + 1, started_at=now, updated_at=now)
            ).rowcount
        return taken == 1

    def renew_job(self, name: str, period: str, owner: str, now: datetime) -> None:
        """Extend the lease of a job this owner is running."""
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.name == name, jobs.c.period == period, jobs.c.owner == owner, jobs.c.status == "running")
                .values(updated_at=now)
            )

    def finish_job(self, name: str, period: str, status: str, detail: str, now: datetime) -> None:
        """Record how a job ended: ``done`` (never run again for the period) or ``failed`` (retried later)."""
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.name == name, jobs.c.period == period)
                .values(status=status, detail=detail[:500], updated_at=now)
            )

    def job(self, name: str, period: str) -> dict[str, Any] | None:
        """One job's record, or None when it never ran."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.name == name, jobs.c.period == period)).first()
        return row._asdict() if row else None

    def delivery_log(self, owner: str = "") -> DeliveryLog:
        """A connection for recording ``owner``'s sends one by one (see `DeliveryLog`)."""
        return DeliveryLog(self.engine, owner)

    # -- source activity, for `digest sources status` (read-only) ------------------------

    def source_activity(self, since: datetime) -> dict[str, tuple[int, datetime | None]]:
        """Per source key: (posts published since ``since``, the newest post's publication time)."""
        recent = sa.func.sum(sa.case((posts.c.published >= since, 1), else_=0))
        query = (
            sa.select(post_sources.c.source, recent, sa.func.max(posts.c.published))
            .join(posts, posts.c.id == post_sources.c.post_id)
            .group_by(post_sources.c.source)
        )
        with self.engine.connect() as conn:
            return {key: (int(count or 0), newest) for key, count, newest in conn.execute(query)}

    def source_drops(self, run_id: int | None = None) -> dict[str, tuple[int, int]]:
        """Per source key: (posts judged, posts dropped as off-topic) in one filter run (default: the last)."""
        with self.engine.connect() as conn:
            if run_id is None:
                run_id = conn.execute(sa.select(sa.func.max(filter_runs.c.id))).scalar_one_or_none()
            if run_id is None:
                return {}
            query = (
                sa.select(post_sources.c.source, decisions.c.topics)
                .join(decisions, decisions.c.post_id == post_sources.c.post_id)
                .where(decisions.c.run_id == run_id)
            )
            rows = conn.execute(query).all()
        counts: dict[str, tuple[int, int]] = {}
        for key, topics in rows:
            judged, dropped = counts.get(key, (0, 0))
            counts[key] = (judged + 1, dropped + (0 if _json(topics) else 1))
        return counts


# Built once: a delivery changes state twice per message, and building the statement each time costs more than running it.
# Only the run holding a delivery's claim may move it.
_MARK_DELIVERY = deliveries.update().where(
    deliveries.c.week == sa.bindparam("_week"),
    deliveries.c.email == sa.bindparam("_email"),
    deliveries.c.owner == sa.bindparam("_owner"),
)
_UNFINISHED = ("queued", "sending", "handed_over")


class DeliveryLog:
    """Records one run's delivery states, each change its own transaction, only on rows the run holds.

    Durable changes go through a connection with ``synchronous=FULL`` (on SQLite: they survive a power
    loss once recorded); the others through one with ``NORMAL``, which survives a crash but may roll
    back on power loss."""

    def __init__(self, engine: Engine, owner: str = "") -> None:
        self.owner = owner
        self.durable, self.fast = engine.connect(), engine.connect()
        if engine.dialect.name == "sqlite":
            self.durable.exec_driver_sql("PRAGMA synchronous=FULL")
            self.fast.exec_driver_sql("PRAGMA synchronous=NORMAL")
        self.durable.commit()
        self.fast.commit()

    def mark(self, delivery: Delivery, status: str, now: datetime, *, durable: bool = True, **values: Any) -> Delivery:
        """Move one delivery to ``status`` (with answer, error, attempts or lease) and commit.

        Raises `LostClaim` when the run no longer holds the delivery (its lease lapsed and another run
        took it over): the caller must not hand the message over.
        """
        conn = self.durable if durable else self.fast
        params = {
            "_week": delivery.week,
            "_email": delivery.email,
            "_owner": self.owner,
            "status": status,
            "updated_at": now,
            **values,
        }
        if conn.execute(_MARK_DELIVERY, params).rowcount != 1:
            conn.rollback()
            raise LostClaim(f"{delivery.email}: another run took this delivery over; it sends it")
        conn.commit()
        known = {k: v for k, v in values.items() if k in Delivery.__dataclass_fields__}
        return Delivery(**{**asdict(delivery), "status": status, **known})

    def close(self) -> None:
        self.durable.close()
        self.fast.close()

    def __enter__(self) -> DeliveryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class SourceClaims:
    """What `Store.claim_sources` got: the claimed sources' states, those held by other runs (key ->
    why), and the claimed ones taken over from a run that died or whose lease lapsed (key -> its owner)."""

    claimed: dict[str, SourceState] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    taken_over: dict[str, str] = field(default_factory=dict)


_STATE_FIELDS = tuple(f.name for f in fields(SourceState))


def _source_state(row: Any) -> SourceState:
    m = row._mapping
    return SourceState(**{name: m[name] for name in _STATE_FIELDS})


def _signal(row: Any) -> Signal:
    return Signal(row.email or "", row.post_id, row.topic, row.kind, row.text, row.author, row.created_at)


def _recipient(row: Any) -> Recipient:
    topics = _json(row.topics) if row.topics is not None else None
    return Recipient(
        row.email, row.name, tuple(topics) if topics is not None else None, row.status, row.origin, row.bounces
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.week, row.email, row.path, row.status, row.message_id, row.attempts, row.answer, row.error, row.uncertain
    )


@dataclass(frozen=True, slots=True)
class FilterRun:
    """One run of the topic filter: when, over which window, and each post's decision in batch order."""

    id: int
    ran_at: datetime
    since: datetime
    until: datetime
    topics: tuple[str, ...]
    verdicts: list[tuple[str, Decision]]

    def decision(self, post_id: str) -> Decision | None:
        return next((d for pid, d in self.verdicts if pid == post_id), None)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _select_in(conn: Connection, table: sa.Table, column: sa.Column[Any], values: set[str]) -> list[Any]:
    """Rows whose ``column`` is one of ``values``, asked in chunks the database accepts."""
    rows: list[Any] = []
    for chunk in _chunks(sorted(values), 500):
        rows.extend(conn.execute(sa.select(table).where(column.in_(chunk))))
    return rows


def _insert_new(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], returning: sa.Column[Any] | None = None
) -> set[Any]:
    """Insert ``rows``, skipping each one whose key is already stored (perhaps by another process a
    moment ago); return the ``returning`` values of the rows this call inserted."""
    if not rows:
        return set()
    dialect = conn.dialect
    if dialect.name in _ON_CONFLICT and (returning is None or dialect.insert_executemany_returning):
        statement = _ON_CONFLICT[dialect.name](table).on_conflict_do_nothing()
        if returning is None:
            conn.execute(statement, list(rows))
            return set()
        return set(conn.execute(statement.returning(returning), list(rows)).scalars())
    inserted: set[Any] = set()
    for row in rows:  # any other database: one row at a time, a duplicate rolled back to its savepoint
        try:
            with conn.begin_nested():
                conn.execute(table.insert(), row)
        except sa.exc.IntegrityError:
            continue
        if returning is not None:
            inserted.add(row[returning.name])
    return inserted


def _existing(conn: Connection, column: sa.Column[Any], values: set[str]) -> set[str]:
    """Which of ``values`` are already in ``column``."""
    found: set[str] = set()
    for chunk in _chunks(sorted(values), 500):
        found.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
    return found


def _post_row(post: Post, collected_at: datetime) -> dict[str, Any]:
    return {
        "id": post.id,
        "uri": post.uri,
        "source": post.source,
        "url": post.url,
        "published": post.published,
        "author_name": post.author.name,
        "author_handle": post.author.handle,
        "author_url": post.author.url,
        "title": post.title,
        "text": post.text,
        "html": post.html,
        "language": post.language,
        "tags": list(post.tags),
        "mentions": list(post.mentions),
        "links": list(post.links),
        "media": [asdict(m) for m in post.media],
        "is_reply": post.is_reply,
        "in_reply_to": post.in_reply_to,
        "is_boost": post.is_boost,
        "is_quote": post.is_quote,
        "boosted_by": post.boosted_by,
        "content_warning": post.content_warning,
        "sensitive": post.sensitive,
        **asdict(post.engagement),
        "collected_at": collected_at,
    }


def _row_post(row: Any) -> Post:
    m = row._mapping
    simple = {
        f.name: m[f.name] for f in fields(Post) if f.name in m and f.name not in ("tags", "mentions", "links", "media")
    }
    return Post(
        **simple,
        author=Author(m["author_name"], m["author_handle"], m["author_url"]),
        tags=tuple(_json(m["tags"])),
        mentions=tuple(_json(m["mentions"])),
        links=tuple(_json(m["links"])),
        media=tuple(Media(**item) for item in _json(m["media"])),
        engagement=Engagement(*(m[k] for k in _ENGAGEMENT)),
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value

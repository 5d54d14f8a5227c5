"""The database's tables, the migrations from each older schema, and creating or migrating one.

A fresh database is created at the newest schema; an existing one is migrated step by step in one
transaction under a lock, so a file written by an older digest never loses data and two processes
opening it at once find it done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import clock
from ..errors import StoreError

__all__ = ["SCHEMA_VERSION", "metadata", "migrate", "suppression_hash"]


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

signals = sa.Table(  # readers' "not for me" / "more like this" (issue 17); see `_signals.SignalRecords`
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


# The transaction-level advisory lock held while PostgreSQL's schema is created or migrated.
_SCHEMA_LOCK = int.from_bytes(hashlib.sha256(b"digest schema").digest()[:8], "big", signed=True)


def migrate(
    conn: Connection, where: str, steps: dict[int, Sequence[Migration]] = MIGRATIONS, newest: int = SCHEMA_VERSION
) -> None:
    """Create (at ``newest``) or migrate the schema in ``conn``'s write transaction, one process at a
    time: the version is read under the lock, so a second process opening a new or old database waits
    and finds it done. ``steps`` go from version N-1 to N."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
    if not sa.inspect(conn).has_table("schema_info"):
        metadata.create_all(conn)
        conn.execute(schema_info.insert().values(version=newest))
        return
    version = conn.execute(sa.select(schema_info.c.version)).scalar_one()
    if version > newest:
        raise StoreError(
            f"{where}: schema version {version} was written by a newer digest (this one knows {newest}); upgrade digest"
        )
    for step in range(version + 1, newest + 1):
        for statement in steps[step]:
            if callable(statement):
                statement(conn)
            else:
                conn.exec_driver_sql(statement)
    conn.execute(schema_info.update().values(version=newest))

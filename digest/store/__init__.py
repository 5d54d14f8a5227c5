"""The store seam: SQLAlchemy Core over SQLite by default (any SQLAlchemy URL works), with migrations.

One private module per table group, each a `Records` mixin of `Store`: `_sources` (endpoint state,
claims on sources), `_posts`, `_decisions` (filter runs), `_subscribers` (and suppressions),
`_editions`, `_deliveries` (claims on deliveries, `DeliveryLog`) and `_jobs` (the serve schedule);
`_schema` holds the tables and migrations, `_engine` the connection, and `leases` names who holds a claim.

A fresh database is created at the newest schema; an existing one is migrated step by step in a
transaction, so a file written by an older digest never loses data.

Safe to run twice: two processes may open, migrate and collect into one database at once
(cron beside `digest serve`). The schema is created and migrated under a lock (an advisory lock
on PostgreSQL, a write transaction taken before the version is read on SQLite), and posts, their
links and sources, and source states are written with INSERT ... ON CONFLICT, so a row another
process stored first is never an error and counts as new only for the process that stored it.
Which SQL each database gets is decided here, never by callers, and every database error leaves the
store as one `StoreError` with a one-line reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from ..errors import StoreError, one_line
from ._decisions import DecisionRecords, FilterRun
from ._deliveries import DeliveryLog, DeliveryRecords
from ._editions import EditionRecords
from ._engine import (
    database_exists,
    display_url,
    environment_failure,
    raise_environment_failure,
    retried,
    sqlite_pragmas,
)
from ._jobs import JobRecords
from ._posts import PostRecords
from ._schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    deliveries,
    editions,
    filter_runs,
    jobs,
    metadata,
    migrate,
    post_links,
    post_sources,
    posts,
    schema_info,
    sources,
    subscribers,
    suppression_hash,
    suppressions,
)
from ._sources import SourceClaims, SourceRecords
from ._subscribers import SubscriberRecords

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DeliveryLog",
    "FilterRun",
    "SourceClaims",
    "Store",
    "database_exists",
    "deliveries",
    "display_url",
    "editions",
    "environment_failure",
    "filter_runs",
    "jobs",
    "metadata",
    "post_links",
    "post_sources",
    "posts",
    "schema_info",
    "sources",
    "subscribers",
    "suppression_hash",
    "suppressions",
]


class Store(
    SourceRecords, PostRecords, DecisionRecords, SubscriberRecords, EditionRecords, DeliveryRecords, JobRecords
):
    """Every table's records behind one SQLAlchemy engine; open with `Store.open`."""

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
            sa.event.listen(engine, "connect", sqlite_pragmas)
        sa.event.listen(engine, "handle_error", raise_environment_failure)
        store = cls(engine)
        try:
            retried(store._migrate)
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            why = one_line(getattr(exc, "orig", None) or exc, 300)
            raise StoreError(f"{shown}: cannot open the database: {exc.__class__.__name__}: {why}") from None
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
        sa.event.listen(engine, "handle_error", raise_environment_failure)
        store = cls(engine)
        try:
            version = store.version
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            why = one_line(getattr(exc, "orig", None) or exc, 300)
            raise StoreError(f"{path}: cannot read the database: {why}") from None
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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._writing() as conn:
            migrate(conn, self._where, MIGRATIONS, SCHEMA_VERSION)  # read here: a test may add a step

    @property
    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(schema_info.c.version)).scalar_one())

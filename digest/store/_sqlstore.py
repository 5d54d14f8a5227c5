"""`SQLStore`: the store over SQLAlchemy Core, one mixin per table group, opened (created or migrated,
or read-only) from a URL."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from ..dburl import display_url, read_only_uri, sqlite_path
from ..errors import StoreError, one_line
from ._decisions import DecisionRecords
from ._deliveries import DeliveryRecords
from ._editions import EditionRecords
from ._engine import raise_environment_failure, retried, sqlite_pragmas
from ._jobs import JobRecords
from ._posts import PostRecords
from ._schema import Migration, migrate, schema_info
from ._signals import SignalRecords
from ._sources import SourceRecords
from ._subscribers import SubscriberRecords

__all__ = ["SQLStore"]


def _newest() -> tuple[dict[int, Sequence[Migration]], int]:
    """The migrations and schema version `digest.store` exports, read when a database is opened."""
    from . import MIGRATIONS, SCHEMA_VERSION

    return MIGRATIONS, SCHEMA_VERSION


class SQLStore(
    SourceRecords,
    PostRecords,
    DecisionRecords,
    SubscriberRecords,
    EditionRecords,
    DeliveryRecords,
    JobRecords,
    SignalRecords,
):
    """`Store` over SQLAlchemy: every table's records behind one engine; open with `SQLStore.open`."""

    @classmethod
    def open(cls, url: str, *, read_only: bool = False) -> SQLStore:
        """Open (creating and migrating as needed) the database at a SQLAlchemy URL; ``read_only``
        for commands that only read, so they work on a file or in a folder this user cannot write."""
        shown = display_url(url)
        path = sqlite_path(url) if read_only else None
        if path is not None:
            return cls._open_sqlite_read_only(path)
        try:
            engine = sa.create_engine(url)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:  # an unknown database or a driver not installed
            hint = (
                "; install digest with its postgres extra: pip install 'digest[postgres]'"
                if sa.engine.make_url(url).get_backend_name() == "postgresql"
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
    def _open_sqlite_read_only(cls, path: Path) -> SQLStore:
        """A SQLite file opened read-only, never created or migrated (`read_only_uri`)."""
        uri = read_only_uri(path)
        engine = sa.create_engine(  # the quoted URI goes to sqlite3 as is (a URL would be unquoted on the way)
            "sqlite://",
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
            poolclass=sa.pool.QueuePool,
        )
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
        newest = _newest()[1]
        if version != newest:
            engine.dispose()
            raise StoreError(
                f"{path}: schema version {version}, this digest knows {newest}: run a command that "
                "writes (digest collect) where the file can be written, to migrate it"
            )
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._writing() as conn:
            migrate(conn, self._where, *_newest())

    @property
    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(schema_info.c.version)).scalar_one())

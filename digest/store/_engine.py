"""Connecting to the database: SQLite's pragmas, one-line reasons for a failing disk or file, retried
writes, and `Records`, the base of each table's methods, whose database errors become a `StoreError`.

Which SQL each database gets is decided in this package, never by callers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError, one_line

__all__ = ["Records", "environment_failure", "guarded", "retried", "store_error"]

# A write that lost a deadlock (PostgreSQL) or outwaited the busy timeout (SQLite) is tried again.
_WRITE_ATTEMPTS = 4
_T = TypeVar("_T")
_TRANSIENT_SQLSTATES = ("40001", "40P01")  # serialization_failure, deadlock_detected


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # A new file switched to WAL by two processes at once: the loser is told "database is locked"
    # at once, whatever the busy timeout, so it tries again until the other one is done. (sqlite3's
    # text, not ours: the one message that means SQLITE_BUSY whichever wrapper raised it.)
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
# Matching the driver's text is deliberate: these are sqlite3's own messages (stable across its
# versions), the same for every error class SQLAlchemy wraps them in, and psycopg never says them.
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


def raise_environment_failure(context: Any) -> None:
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


def retried(work: Callable[[], _T]) -> _T:
    """Run a write transaction, again after a short wait when another process had the database locked."""
    for attempt in range(1, _WRITE_ATTEMPTS):
        try:
            return work()
        except sa.exc.OperationalError as exc:
            if not _transient(exc):
                raise
            time.sleep(0.05 * attempt)
    return work()


class Records:
    """What every table's methods share: the engine, write transactions, and the database's name."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def _where(self) -> str:
        """The database's URL for messages, its password masked."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction that holds the write lock from its first statement: on SQLite
        BEGIN IMMEDIATE (waiting up to the busy timeout for another writer), so what it reads
        cannot change before it writes."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn


_R = TypeVar("_R")
_P = ParamSpec("_P")


class _Engined(Protocol):
    engine: Engine


_S = TypeVar("_S", bound=_Engined)


def guarded(doing: str) -> Callable[[Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], _R]]:
    """Decorate a store method so that any database error leaves it as one `StoreError`:
    ``URL: cannot DOING: ErrorClass: the database's reason``, on one line."""

    def decorate(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
        @functools.wraps(method)
        def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return method(self, *args, **kwargs)
            except sa.exc.SQLAlchemyError as exc:
                raise store_error(self.engine, doing, exc) from exc

        return run

    return decorate


def store_error(engine: Engine, doing: str, exc: sa.exc.SQLAlchemyError) -> StoreError:
    """``URL: cannot DOING: ErrorClass: the database's reason``, on one line, the password masked."""
    why = one_line(getattr(exc, "orig", None) or exc, 300)
    where = engine.url.render_as_string(hide_password=True)
    return StoreError(f"{where}: cannot {doing}: {exc.__class__.__name__}: {why}")

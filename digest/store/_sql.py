"""Statements every table needs: inserts that skip rows already stored, lookups in chunks, JSON read back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["ON_CONFLICT", "existing", "from_json", "insert_new", "select_in"]

# INSERT ... ON CONFLICT for the databases that have it; any other one inserts row by row in savepoints.
ON_CONFLICT: dict[str, Callable[[sa.Table], Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def select_in(conn: Connection, table: sa.Table, column: sa.Column[Any], values: set[str]) -> list[Any]:
    """Rows whose ``column`` is one of ``values``, asked in chunks the database accepts."""
    rows: list[Any] = []
    for chunk in chunks(sorted(values), 500):
        rows.extend(conn.execute(sa.select(table).where(column.in_(chunk))))
    return rows


def insert_new(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], returning: sa.Column[Any] | None = None
) -> set[Any]:
    """Insert ``rows``, skipping each one whose key is already stored (perhaps by another process a
    moment ago); return the ``returning`` values of the rows this call inserted."""
    if not rows:
        return set()
    dialect = conn.dialect
    if dialect.name in ON_CONFLICT and (returning is None or dialect.insert_executemany_returning):
        statement = ON_CONFLICT[dialect.name](table).on_conflict_do_nothing()
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


def existing(conn: Connection, column: sa.Column[Any], values: set[str]) -> set[str]:
    """Which of ``values`` are already in ``column``."""
    found: set[str] = set()
    for chunk in chunks(sorted(values), 500):
        found.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
    return found


def from_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value

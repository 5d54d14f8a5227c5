"""The store's database URLs read without loading SQLAlchemy, so `digest check` stays light: a URL fit
to print (its password masked) and whether a SQLite file exists yet. URLs are SQLAlchemy's:
``dialect[+driver]://user:password@host:port/database?query``; the store package exports both."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

__all__ = ["database_exists", "display_url", "read_only_uri", "sqlite_path"]

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_DIALECT = re.compile(r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)?")


def display_url(url: str) -> str:
    """A database URL fit to print or log: the password, if any, masked as ``***``."""
    return _PASSWORD.sub(r"\1***@", url)


def database_exists(url: str) -> bool:
    """False only for a SQLite file not created yet: a command that only reads need not create it.
    Any other database is taken to be there (opening it says so when it is not)."""
    path = sqlite_path(url)
    return path is None or path.exists()


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names, or None for any other database, a database in memory or a URL
    that is not one (opening it reports the bad URL)."""
    dialect, sep, rest = url.partition("://")
    if not sep or not _DIALECT.fullmatch(dialect) or dialect.split("+", 1)[0] != "sqlite":
        return None
    database = unquote(rest.split("?", 1)[0].partition("/")[2])  # what follows the host, which SQLite has none of
    return None if database in ("", ":memory:") else Path(database)


def read_only_uri(path: Path) -> str:
    """The SQLite URI (for ``sqlite3.connect(..., uri=True)``) that opens ``path`` read-only, never
    creating it; in a folder this user cannot write, where SQLite cannot make its WAL index, as an
    immutable file. The path is quoted, so a name with ``?``, ``#`` or ``%`` opens that very file."""
    immutable = "" if os.access(path.parent, os.W_OK) else "&immutable=1"
    return f"file:{quote(str(path))}?mode=ro{immutable}"

"""The store's database URLs read without loading SQLAlchemy, so `digest check` stays light: a URL fit
to print (its password masked) and whether a SQLite file exists yet. URLs are SQLAlchemy's:
``dialect[+driver]://user:password@host:port/database?query``; the store package exports both."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

__all__ = ["database_exists", "display_url"]

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_DIALECT = re.compile(r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)?")


def display_url(url: str) -> str:
    """A database URL fit to print or log: the password, if any, masked as ``***``."""
    return _PASSWORD.sub(r"\1***@", url)


def database_exists(url: str) -> bool:
    """False only for a SQLite file not created yet: a command that only reads need not create it.
    Any other database is taken to be there (opening it says so when it is not)."""
    dialect, sep, rest = url.partition("://")
    if not sep or not _DIALECT.fullmatch(dialect):
        return True  # opening it reports the bad URL
    if dialect.split("+", 1)[0] != "sqlite":
        return True
    database = unquote(rest.split("?", 1)[0].partition("/")[2])  # what follows the host, which SQLite has none of
    if database in ("", ":memory:"):
        return True
    return Path(database).exists()

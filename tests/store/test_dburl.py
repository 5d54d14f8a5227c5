"""`digest.dburl` reads database URLs without SQLAlchemy (for a light `digest check`); these cases hold
it to what SQLAlchemy's own `make_url` reads from the same URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.dburl import database_exists, display_url


def _sqlalchemy_says_exists(url: str) -> bool:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


@pytest.mark.parametrize(
    "template",
    [
        "sqlite:///{here}/digest.db",
        "sqlite:///{here}/missing.db",
        "sqlite+pysqlite:///{here}/digest.db?timeout=5",
        "sqlite:///{here}/with%20space.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg://digest:hunter2@127.0.0.1:5432/digest",
    ],
)
def test_whether_a_database_exists_agrees_with_sqlalchemy(tmp_path: Path, template: str) -> None:
    (tmp_path / "digest.db").write_bytes(b"")
    (tmp_path / "with space.db").write_bytes(b"")
    url = template.format(here=tmp_path)
    assert database_exists(url) == _sqlalchemy_says_exists(url)


def test_a_missing_sqlite_file_is_not_there_and_a_password_is_masked(tmp_path: Path) -> None:
    assert database_exists(f"sqlite:///{tmp_path}/nothing-yet.db") is False
    url = "postgresql+psycopg://digest:hunter2@127.0.0.1:5432/digest"
    assert display_url(url) == sa.engine.make_url(url).render_as_string(hide_password=True)
    assert display_url("sqlite:///digest.db") == "sqlite:///digest.db"

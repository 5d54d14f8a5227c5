"""Shared fixtures: a real HTTP server on loopback, and the files in ``fixtures/``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import NOW
from httpserver import TestServer

from digest import clock

FIXTURES_DIR = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test, and every command it starts in a child process, runs at `helpers.NOW` (``DIGEST_NOW``).

    No test depends on today's date: data is dated relative to `clock.now()`, never the real clock.
    """
    monkeypatch.setenv(clock.ENV, NOW.isoformat())


@pytest.fixture
def http_server() -> Iterator[TestServer]:
    """A started `TestServer`, closed after the test; fails it if a callable raised."""
    with TestServer() as server:
        yield server
    assert not server.errors, f"the test server recorded errors (route callables or the server): {server.errors!r}"


@pytest.fixture
def fixtures_dir() -> Path:
    """The directory of hand-made fixtures: ``feeds/``, ``mastodon/``, ``bluesky/``."""
    return FIXTURES_DIR


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    """Read a fixture by its path under ``tests/fixtures``.

    ``fixture_bytes("feeds/rss20.xml")``
    """

    def read(name: str) -> bytes:
        return (FIXTURES_DIR / name).read_bytes()

    return read

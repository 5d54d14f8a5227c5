"""Shared fixtures: a real HTTP server on loopback, databases (SQLite and PostgreSQL), and the files in ``fixtures/``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pg
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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pg.Cluster]:
    """A throwaway PostgreSQL server for the session (tests/pg.py), started on first use.

    Skipped with the reason when PostgreSQL or psycopg is missing here; under CI (``CI=true``),
    where it must run, that is a failure instead.
    """
    reason = pg.unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL tests need a local PostgreSQL: {reason}")
    cluster = pg.Cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases of one kind (a SQLite file in tmp_path, or a new database on
    the session's PostgreSQL); each call gives another URL. Parametrized over both kinds."""
    made: list[str] = []
    cluster: pg.Cluster | None = request.getfixturevalue("pg_cluster") if request.param == "postgresql" else None

    def make() -> str:
        url = cluster.new_database() if cluster else f"sqlite:///{tmp_path / f'digest-{len(made) + 1}.db'}"
        made.append(url)
        return url

    yield make
    if cluster is not None:
        for url in made:
            cluster.drop_database(url)


@pytest.fixture
def store_url(new_store_url: Callable[[], str]) -> str:
    """A fresh database URL, once for SQLite (a file in tmp_path) and once for PostgreSQL."""
    return new_store_url()


# The slow ones (real processes racing, attacks, sweeps, the benchmarks, and the tests of 2.5 s or more that
# start several real processes or inflate a GiB): `pytest -m "not slow"` is the fast loop for a developer
# (under 90 s on 2 cores); CI runs everything.
_SLOW_MODULES = {
    "test_bench.py",
    "test_send_concurrency.py",
    "test_races.py",
    "test_preview_browser.py",
    "test_web_browser.py",
    "test_feedback_browser.py",
}
_SLOW_TESTS = {
    "test_healthz_answers_throughout_an_attack_of_more_idle_connections_than_open_files",
    "test_a_database_locked_too_long_is_one_line",
    "test_flaky_server_still_delivers_each_message_exactly_once",
    "test_a_mastodon_page_of_any_shape_never_fails_inside_digest",
    "test_a_bluesky_page_of_any_shape_never_fails_inside_digest",
    "test_hostile_corpus",
    "test_hostile_corpus_with_real_feeds",
    "test_killed_mid_batch_then_rerun_misses_nobody_and_names_every_duplicate",
    "test_two_schedules_on_one_database_send_the_week_once_and_collect_once",
    "test_dev_csv_holds_across_week_sizes_and_topic_shares",
    # 2.5-4 s each on 2 cores (--durations, 2026-12-02): several real processes, or a GiB inflated
    "test_gzip_bomb_is_a_valid_gzip_member",
    "test_verbose_logs_each_source_on_stderr",
    "test_preview_open_with_no_browser_says_so",
    "test_adding_a_source_keeps_every_other_byte_and_reads_back",
    "test_a_database_corrupted_while_a_collect_runs_is_one_line",
    "test_each_claim_reads_a_window_of_the_sources_left_not_all_of_them",
    "test_commands_that_fetch_nothing_never_load_the_network_stack",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in _SLOW_MODULES or getattr(item, "originalname", item.name) in _SLOW_TESTS:
            item.add_marker(pytest.mark.slow)

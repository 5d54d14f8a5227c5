"""The clock seam: `DIGEST_NOW` sets the time every command reads, and it moves on from there."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from digest import clock
from digest.errors import ConfigError


def test_digest_now_sets_the_clock_and_it_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(clock.ENV, "2027-11-26T12:00:00Z")
    first = clock.now()
    time.sleep(0.02)
    second = clock.now()
    assert datetime(2027, 11, 26, 12, tzinfo=UTC) <= first < second < first + timedelta(seconds=5)


def test_a_date_alone_and_an_offset_are_read_as_utc() -> None:
    assert clock.parse_now("2026-11-27") == datetime(2026, 11, 27, tzinfo=UTC)
    assert clock.parse_now("2026-11-27T08:00:00-05:00") == datetime(2026, 11, 27, 13, tzinfo=UTC)


def test_a_bad_value_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match=r"DIGEST_NOW='next friday': not an ISO 8601 time"):
        clock.parse_now("next friday")


def test_without_it_the_clock_is_the_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clock.ENV)
    before = datetime.now(UTC)  # the one place a test reads the real clock: to check the seam reads it too
    assert before <= clock.now() <= datetime.now(UTC)

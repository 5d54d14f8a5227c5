"""Tokens are signed and aged by the clock seam (``DIGEST_NOW``), as every timestamp digest writes is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import NOW

from digest import clock
from digest.errors import TokenError
from digest.tokens import make_token, read_token

SECRET = "tokens-test-secret-6d1f0b9a2c7e4b58a3f1"


def test_a_token_ages_by_the_clock_seam_not_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(SECRET, "confirm", "Ana@Example.org")  # at NOW (conftest sets DIGEST_NOW)
    monkeypatch.setenv(clock.ENV, (NOW + timedelta(days=6)).isoformat())
    assert read_token(SECRET, "confirm", token) == "ana@example.org"
    monkeypatch.setenv(clock.ENV, (NOW + timedelta(days=8)).isoformat())  # past confirm's 7 days
    with pytest.raises(TokenError) as caught:
        read_token(SECRET, "confirm", token)
    assert caught.value.expired


def test_a_token_a_few_seconds_newer_than_the_readers_clock_is_good(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under DIGEST_NOW each process's clock starts at that moment, so `digest send` (started later) signs
    links a little "after" the clock of the `digest serve` that reads them; they must still work."""
    monkeypatch.setenv(clock.ENV, (NOW + timedelta(seconds=5)).isoformat())
    token = make_token(SECRET, "feedback", "ana@example.org")
    monkeypatch.setenv(clock.ENV, NOW.isoformat())
    assert read_token(SECRET, "feedback", token) == "ana@example.org"

"""The one clock every command reads: the real UTC time, or ``DIGEST_NOW`` for rehearsals and tests.

``DIGEST_NOW=2026-11-27T12:00:00Z digest run`` runs the weekly job as if it were that moment: the
window, the edition's week, "due" checks and every timestamp written follow it. A clock that never
moves would stall retry waits and leases, so a set clock advances with real time from the moment the
process first reads it.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from .errors import ConfigError

__all__ = ["ENV", "now", "parse_now"]

ENV = "DIGEST_NOW"
_start: tuple[str, datetime, float] | None = None  # (the value read, that moment, monotonic time then)


def parse_now(value: str) -> datetime:
    """An ISO 8601 moment (``2026-11-27T12:00:00Z``; a date alone is its midnight UTC) as an aware UTC datetime."""
    text = value.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{ENV}={value!r}: not an ISO 8601 time (for example 2026-11-27T12:00:00Z)") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def now() -> datetime:
    """The current time in UTC: real, or ``DIGEST_NOW`` plus the time elapsed since this process first read it."""
    global _start
    value = os.environ.get(ENV, "").strip()
    if not value:
        return datetime.now(UTC)
    if _start is None or _start[0] != value:
        _start = (value, parse_now(value), time.monotonic())
    return _start[1] + timedelta(seconds=time.monotonic() - _start[2])
